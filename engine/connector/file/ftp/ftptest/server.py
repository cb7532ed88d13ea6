# A read-only FTP server for tests: pyftpdlib (Debian's python3-pyftpdlib),
# loopback, a free port printed on stdout, plain or explicit FTPS. It exits
# when its standard input closes (the test process ended).
import logging
import os
import sys
import threading

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
from pyftpdlib.servers import FTPServer

user, password, root, cert = sys.argv[1:5]
auth = DummyAuthorizer()
auth.add_user(user, password, root, perm="elr")
if cert:
    handler = TLS_FTPHandler
    handler.certfile = cert
    handler.tls_control_required = True
    handler.tls_data_required = True
else:
    handler = FTPHandler
handler.authorizer = auth
handler.banner = "openfsb test ftp"
logging.basicConfig(level=logging.ERROR)
server = FTPServer(("127.0.0.1", 0), handler)
print(server.address[1], flush=True)


def watch_stdin():
    sys.stdin.read()
    os._exit(0)


threading.Thread(target=watch_stdin, daemon=True).start()
server.serve_forever()
