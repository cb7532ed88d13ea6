package loadbench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bounds on a candidate child process.
const (
	childStartTimeout = 15 * time.Second // until it prints its address
	childStopTimeout  = 10 * time.Second // from closing its stdin until it exits (its server shuts down within 5s)
)

// childServer is a candidate server running as a child process: the
// ServeCommand (`fsb bench-serve`) with the candidate's flags. It serves
// until its standard input is closed.
type childServer struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *syncBuffer // its stderr, and whatever stdout it prints after the address
	addr  string
	exit  chan struct{} // closed once it has exited; then err is its exit status
	err   error
}

// startChild runs command (argv of `fsb bench-serve`) for candidate name
// and waits, at most childStartTimeout, for the address it prints.
func startChild(command []string, name string, backendURLs [3]string, poolConns int) (*childServer, error) {
	if len(command) == 0 {
		return nil, errors.New("no serve command")
	}
	args := append(slices.Clone(command[1:]),
		"-candidate", name,
		"-backends", strings.Join(backendURLs[:], ","),
		"-listen", "127.0.0.1:0",
		"-pool", strconv.Itoa(poolConns))
	cmd := exec.Command(command[0], args...)
	// Nothing sets the child's GOMAXPROCS here: it chooses as `fsb serve`
	// does (all the cores it may use, like nginx's "worker_processes auto";
	// one more for the audited candidate, cmd/fsb setProcs).
	c := &childServer{name: name, cmd: cmd, out: &syncBuffer{}, exit: make(chan struct{})}
	ready := make(chan string, 1)
	cmd.Stdout = &readyWatcher{ready: ready, rest: c.out}
	cmd.Stderr = c.out
	cmd.SysProcAttr = childAttr()
	cmd.WaitDelay = 2 * time.Second // do not wait long for its pipes once it has exited
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c.stdin = stdin
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, command[0], err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.exit)
	}()
	t := time.NewTimer(childStartTimeout)
	defer t.Stop()
	select {
	case addr := <-ready:
		if err := checkLoopback(addr); err != nil {
			c.kill()
			return nil, fmt.Errorf("%s: the child process announced %w%s", name, err, tail(c.out.Bytes()))
		}
		c.addr = addr
		return c, nil
	case <-c.exit:
		return nil, fmt.Errorf("%s: the child process exited at start (%v): %s%s", name, c.err, cmd, tail(c.out.Bytes()))
	case <-t.C:
		c.kill()
		return nil, fmt.Errorf("%s: the child process did not announce its address within %s: %s%s", name, childStartTimeout, cmd, tail(c.out.Bytes()))
	}
}

// kill ends the child at once and waits (bounded) for it.
func (c *childServer) kill() {
	_ = c.cmd.Process.Kill()
	select {
	case <-c.exit:
	case <-time.After(childStopTimeout):
	}
}

// alive reports an error, with the child's output, if it has exited.
func (c *childServer) alive() error {
	select {
	case <-c.exit:
		return fmt.Errorf("%s: the child process (pid %d) exited (%v)%s", c.name, c.cmd.Process.Pid, c.err, tail(c.out.Bytes()))
	default:
		return nil
	}
}

// Close closes the child's standard input, which makes it shut its server
// down and exit, and waits for that; after childStopTimeout it kills it.
// The error, with the child's output, says how it did not exit cleanly.
func (c *childServer) Close() error {
	_ = c.stdin.Close()
	select {
	case <-c.exit:
	case <-time.After(childStopTimeout):
		c.kill()
		return fmt.Errorf("%s: the child process did not exit within %s of its stdin closing; killed%s", c.name, childStopTimeout, tail(c.out.Bytes()))
	}
	if c.err != nil {
		return fmt.Errorf("%s: the child process exited with %v%s", c.name, c.err, tail(c.out.Bytes()))
	}
	return nil
}

// readyWatcher takes a child's stdout: the first line "listening ADDR"
// sends ADDR on ready; everything else goes to rest.
type readyWatcher struct {
	ready chan<- string
	rest  io.Writer
	line  []byte
	done  bool
}

func (w *readyWatcher) Write(p []byte) (int, error) {
	n := len(p)
	if w.done {
		return w.rest.Write(p)
	}
	w.line = append(w.line, p...)
	i := bytes.IndexByte(w.line, '\n')
	if i < 0 {
		if len(w.line) > 4096 { // not an address line
			w.done = true
			_, err := w.rest.Write(w.line)
			return n, err
		}
		return n, nil
	}
	w.done = true
	first, after := strings.TrimSpace(string(w.line[:i])), w.line[i+1:]
	if addr, ok := strings.CutPrefix(first, ReadyPrefix); ok {
		w.ready <- strings.TrimSpace(addr)
	} else {
		after = w.line
	}
	_, err := w.rest.Write(after)
	return n, err
}

// syncBuffer is a bytes.Buffer safe for one writer and readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 { // keep memory bounded; the tail is what is shown
		b.buf.Next(b.buf.Len() - 64<<10)
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
