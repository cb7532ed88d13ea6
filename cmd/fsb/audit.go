package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/openfsb/fsb/engine/audit"
)

// cmdAudit reads and checks the audit trail. Every subcommand works either
// offline on a store directory (-dir; the server must be stopped, Badger
// locks the directory) or through the running server's admin API (-admin,
// -admin-token-file).
func cmdAudit(args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, `usage: fsb audit <command> [flags]

commands:
  verify         walk the chain and the signed checkpoints; report the first record altered, removed or inserted
  query          list records by trace id, organisation, service, data subject, kind or time
  export         write records with their proofs as JSON Lines
  verify-export  check an export file offline (-pub)
  proof SEQ      print the proof that record SEQ is in the chain up to a signed checkpoint
  keygen         write a new Ed25519 key (-out FILE, mode 0600) and print its public key
  secret         write a new random 32-byte secret (-out FILE, mode 0600): subject keys, admin tokens

Offline: -dir DIR (and -pub HEX or -key FILE for verify). Online: -admin URL -admin-token-file FILE.`)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" {
		usage()
		return 0
	}
	sub := args[0]
	fs := flag.NewFlagSet("audit "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var af adminFlags
	af.register(fs)
	dir := fs.String("dir", "", "work offline on this store directory (the server must be stopped)")
	pubHex := fs.String("pub", "", "the checkpoint public key, hex (offline verify)")
	keyFile := fs.String("key", "", "the checkpoint private key file; its public key is used (offline verify)")
	out := fs.String("out", "", "output file (keygen, secret, export; default stdout for export)")
	var q searchFlags
	if sub == "query" {
		q.register(fs)
	}
	from := fs.Uint64("from", 0, "first record seq (export)")
	to := fs.Uint64("to", 0, "last record seq (export)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	ctx := context.Background()
	fail := func(err error) int {
		fmt.Fprintf(stderr, "fsb audit %s: %v\n", sub, err)
		return 1
	}
	// open returns an offline store or an admin client.
	open := func() (*audit.Store, *adminClient, error) {
		if *dir != "" {
			s, err := audit.Open(audit.Options{Dir: *dir, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				return nil, nil, fmt.Errorf("open %s (stop the server first, or use -admin): %w", *dir, err)
			}
			return s, nil, nil
		}
		a, err := af.client()
		return nil, a, err
	}
	switch sub {
	case "keygen":
		if *out == "" {
			return fail(errors.New("-out is required"))
		}
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return fail(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return fail(err)
		}
		if err := writeNew(*out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "%x\n", []byte(key.Public().(ed25519.PublicKey)))
		return 0
	case "secret":
		if *out == "" {
			return fail(errors.New("-out is required"))
		}
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		if err := writeNew(*out, []byte(hex.EncodeToString(b)+"\n")); err != nil {
			return fail(err)
		}
		return 0
	case "verify-export":
		if fs.NArg() != 1 || *pubHex == "" {
			return fail(errors.New("usage: fsb audit verify-export -pub HEX FILE"))
		}
		pub, err := parsePublicKey(*pubHex)
		if err != nil {
			return fail(err)
		}
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		rep, err := audit.VerifyExport(ctx, f, pub)
		if err != nil {
			return fail(err)
		}
		return printReport(stdout, rep)
	case "verify":
		s, a, err := open()
		if err != nil {
			return fail(err)
		}
		var rep audit.Report
		if s != nil {
			defer s.Close()
			pub, err := offlinePub(*pubHex, *keyFile)
			if err != nil {
				return fail(err)
			}
			if rep, err = audit.Verify(ctx, s, pub); err != nil {
				return fail(err)
			}
		} else if err := a.do("POST", "/audit/verify", nil, &rep); err != nil {
			return fail(err)
		}
		return printReport(stdout, rep)
	case "query":
		s, a, err := open()
		if err != nil {
			return fail(err)
		}
		query, err := q.query()
		if err != nil {
			return fail(err)
		}
		var page audit.Page
		if s != nil {
			defer s.Close()
			page, err = s.Query(ctx, query)
		} else {
			err = a.do("POST", "/audit/records/search", searchBody(query), &page)
		}
		if err != nil {
			return fail(err)
		}
		enc := json.NewEncoder(stdout)
		for _, e := range page.Entries {
			_ = enc.Encode(e)
		}
		if page.Next != "" {
			fmt.Fprintf(stderr, "more: -cursor %s\n", page.Next)
		}
		return 0
	case "export":
		s, a, err := open()
		if err != nil {
			return fail(err)
		}
		w := stdout
		if *out != "" {
			f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fail(err)
			}
			defer f.Close()
			w = f
		}
		if s != nil {
			defer s.Close()
			if _, err := s.Export(ctx, w, audit.ExportOptions{From: *from, To: *to}); err != nil {
				return fail(err)
			}
			return 0
		}
		var raw []byte
		if err := a.do("GET", fmt.Sprintf("/audit/export?from=%d&to=%d", *from, *to), nil, &raw); err != nil {
			return fail(err)
		}
		_, err = w.Write(raw)
		if err != nil {
			return fail(err)
		}
		return 0
	case "proof":
		seq, err := strconv.ParseUint(fs.Arg(0), 10, 64)
		if fs.NArg() != 1 || err != nil {
			return fail(errors.New("usage: fsb audit proof SEQ"))
		}
		s, a, err := open()
		if err != nil {
			return fail(err)
		}
		var p audit.Proof
		if s != nil {
			defer s.Close()
			p, err = s.Proof(ctx, seq)
		} else {
			err = a.do("GET", "/audit/records/"+url.PathEscape(fs.Arg(0))+"/proof", nil, &p)
		}
		if err != nil {
			return fail(err)
		}
		b, _ := json.MarshalIndent(p, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	fmt.Fprintf(stderr, "fsb audit: unknown command %q\n\n", sub)
	usage()
	return 2
}

func printReport(w io.Writer, rep audit.Report) int {
	b, _ := json.MarshalIndent(rep, "", "  ")
	fmt.Fprintln(w, string(b))
	if !rep.OK() {
		fmt.Fprintf(w, "FAILED at record %d: %s (%s)\n", rep.Problem.Seq, rep.Problem.Kind, rep.Problem.Detail)
		return 1
	}
	fmt.Fprintf(w, "ok: records %d–%d verified, signed through %d, %d unsigned\n", rep.First, rep.Last, rep.Signed, rep.Unsigned())
	return 0
}

// searchFlags are the filters of fsb audit query.
type searchFlags struct {
	traceID, org, service, subject, kinds, from, to, cursor string
	limit                                                   int
	desc                                                    bool
}

func (f *searchFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.traceID, "trace-id", "", "a BelGov-Trace-Id (ours, the consumer's or a source call's)")
	fs.StringVar(&f.org, "org", "", "organisation (enterprise number)")
	fs.StringVar(&f.service, "service", "", "service (flow name)")
	fs.StringVar(&f.subject, "subject", "", "data subject identifier, looked up through its pseudonym")
	fs.StringVar(&f.kinds, "kind", "", "comma-separated: request, refused, outcome")
	fs.StringVar(&f.from, "since", "", "from this time (RFC 3339)")
	fs.StringVar(&f.to, "until", "", "until this time (RFC 3339)")
	fs.StringVar(&f.cursor, "cursor", "", "the next page of an earlier query")
	fs.IntVar(&f.limit, "limit", 100, "records per page (at most 1000)")
	fs.BoolVar(&f.desc, "desc", false, "newest first")
}

func (f *searchFlags) query() (audit.Query, error) {
	q := audit.Query{TraceID: f.traceID, Organisation: f.org, Service: f.service, Subject: f.subject, Limit: f.limit, Desc: f.desc, Cursor: f.cursor}
	for _, k := range splitList(f.kinds) {
		q.Kinds = append(q.Kinds, audit.Kind(k))
	}
	for _, t := range []struct {
		s   string
		dst *time.Time
	}{{f.from, &q.From}, {f.to, &q.To}} {
		if t.s != "" {
			v, err := time.Parse(time.RFC3339Nano, t.s)
			if err != nil {
				return q, err
			}
			*t.dst = v
		}
	}
	return q, nil
}

func searchBody(q audit.Query) map[string]any {
	m := map[string]any{"desc": q.Desc, "limit": q.Limit}
	for k, v := range map[string]string{"traceId": q.TraceID, "organisation": q.Organisation, "service": q.Service, "subject": q.Subject, "cursor": q.Cursor} {
		if v != "" {
			m[k] = v
		}
	}
	if len(q.Kinds) > 0 {
		m["kinds"] = q.Kinds
	}
	if !q.From.IsZero() {
		m["from"] = q.From
	}
	if !q.To.IsZero() {
		m["to"] = q.To
	}
	return m
}

func offlinePub(pubHex, keyFile string) (ed25519.PublicKey, error) {
	switch {
	case pubHex != "":
		return parsePublicKey(pubHex)
	case keyFile != "":
		k, err := loadEd25519Key(keyFile)
		if err != nil {
			return nil, err
		}
		return k.Public().(ed25519.PublicKey), nil
	}
	return nil, errors.New("offline verify needs -pub HEX or -key FILE")
}

func parsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("the public key is 64 hex digits (32 bytes)")
	}
	return ed25519.PublicKey(b), nil
}

// readPrivateFile reads a secret file, refusing one that others can read.
func readPrivateFile(name string) ([]byte, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %o): chmod 600 it", name, fi.Mode().Perm())
	}
	return os.ReadFile(name)
}

// loadEd25519Key reads an Ed25519 private key: PEM PKCS#8 (what
// `fsb audit keygen` and `openssl genpkey -algorithm ed25519` write).
func loadEd25519Key(name string) (ed25519.PrivateKey, error) {
	b, err := readPrivateFile(name)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PEM PRIVATE KEY", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an Ed25519 key", name)
	}
	return ek, nil
}

// loadSecret reads a subject key: at least 32 bytes after trimming; its id
// (recorded in pseudonyms) is derived from the secret, so rotating the file
// changes it.
func loadSecret(name string) (audit.Key, error) {
	b, err := readPrivateFile(name)
	if err != nil {
		return audit.Key{}, err
	}
	b = []byte(strings.TrimSpace(string(b)))
	if len(b) < 32 {
		return audit.Key{}, fmt.Errorf("%s: the secret must be at least 32 bytes", name)
	}
	sum := sha256.Sum256(append([]byte("openfsb-subject-key-id\x00"), b...))
	return audit.Key{ID: hex.EncodeToString(sum[:4]), Secret: b}, nil
}

func writeNew(name string, b []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
