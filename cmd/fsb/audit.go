package main

import (
	"archive/tar"
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
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/openfsb/fsb/engine/audit"
	"github.com/openfsb/fsb/engine/gateway"
)

// cmdAudit reads and checks the audit trail. Every subcommand works either
// offline on a store directory (-dir; the server must be stopped: the store
// locks the directory) or through the running server's admin API (-admin,
// -admin-token-file).
func cmdAudit(args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, `usage: fsb audit <command> [flags]

commands:
  verify         walk the chain and the signed checkpoints; report the first record altered, removed or inserted
                 (-witness FILE, repeatable: checkpoints kept outside the store, which the chain must still hold;
                 -index: also check the index that queries and the citizen view read against the log)
  query          list records by trace id, organisation, service, data subject, kind or time
  consultations  the citizen view (-subject ID): who consulted data about this person, when, through which service, for what purpose
  export         write records with their proofs as JSON Lines
  verify-export  check an export file offline (-pub)
  witness        append the running server's last signed checkpoint to -out (JSON Lines; -pub HEX checks its
                 signature first): what a witness keeps, outside the store's reach, for verify -witness
  proof SEQ      print the proof that record SEQ is in the chain up to a signed checkpoint
  verify-proof FILE  check a proof (as proof or the consumer API prints it) offline (-pub)
  prune          apply the retention: online the server's own, offline that of -config (with -dir and -key); expired records are deleted behind a signed anchor or redacted
  backup         write a full backup to -out (mode 0600): online of the running store, offline of a stopped one (-dir)
  restore FILE   load a backup into -dir, which must not exist or be empty, and verify it (-pub or -key); a failed restore removes what it wrote
  keygen         write a new Ed25519 key (-out FILE, mode 0600) and print its public key
  secret         write a new random 32-byte secret (-out FILE, mode 0600): subject keys, admin tokens

Offline: -dir DIR (the server must be stopped; -pub HEX or -key FILE for verify;
-subject-key-file FILE for query -subject and consultations). Online: -admin URL -admin-token-file FILE
(verify -pub HEX then also checks the server's key). restore is offline only.
Flags may come before or after the positional argument.`)
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
	out := fs.String("out", "", "output file (keygen, secret, backup, export; default stdout for export)")
	subjectKeyFile := fs.String("subject-key-file", "", "the subject key file fsb serve -subject-key-file names (offline query -subject)")
	var q searchFlags
	if sub == "query" || sub == "consultations" {
		q.register(fs)
	}
	configFile := fs.String("config", "", "the audit configuration (retention per service) that fsb serve -audit-config reads (prune)")
	now := fs.String("now", "", "prune as of this time (RFC 3339; default now)")
	from := fs.Uint64("from", 0, "first record seq (export)")
	to := fs.Uint64("to", 0, "last record seq (export)")
	acceptUnsigned := fs.Bool("accept-unsigned-redactions", false, "accept records redacted without a signature: those of a store migrated from the Badger format or pruned before redactions were signed (verify, verify-export, restore)")
	checkIndex := fs.Bool("index", false, "also check the secondary index (what queries and the citizen view read) against the log (verify)")
	var witnessFiles []string
	fs.Func("witness", "a file of checkpoints kept outside the store (GET /admin/audit/head answers, proofs; JSON, JSON Lines) that the chain must still hold (verify; repeatable)", func(v string) error {
		witnessFiles = append(witnessFiles, v)
		return nil
	})
	if code, ok := parseInterspersed(fs, args[1:]); !ok {
		return code
	}
	ctx := context.Background()
	fail := func(err error) int {
		fmt.Fprintf(stderr, "fsb audit %s: %v\n", sub, err)
		return 1
	}
	// open returns an offline store or an admin client.
	open := func() (*audit.Store, *adminClient, error) {
		if *dir != "" {
			opt := audit.Options{Dir: *dir, Logger: slog.New(slog.DiscardHandler)}
			if *subjectKeyFile != "" {
				k, err := loadSecret(*subjectKeyFile)
				if err != nil {
					return nil, nil, fmt.Errorf("-subject-key-file: %w", err)
				}
				opt.SubjectKeys = []audit.Key{k}
			}
			s, err := audit.Open(opt)
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
		pub, f, err := pubAndFile(fs, *pubHex, sub)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		rep, err := audit.VerifyExport(ctx, f, pub)
		if err != nil {
			return fail(err)
		}
		return printReport(stdout, rep, *acceptUnsigned, false)
	case "verify":
		witnessed, err := readWitnessFiles(witnessFiles)
		if err != nil {
			return fail(err)
		}
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
			if rep, err = audit.VerifyWitnessed(ctx, s, pub, witnessed); err != nil {
				return fail(err)
			}
			if *checkIndex {
				audit.AddIndex(ctx, s, &rep)
			}
		} else {
			if *pubHex != "" {
				// The server verifies against its own key: check that it is
				// the one the caller trusts.
				want, err := parsePublicKey(*pubHex)
				if err != nil {
					return fail(err)
				}
				var head auditHead
				if err := a.do("GET", "/audit/head", nil, &head); err != nil {
					return fail(err)
				}
				if got, err := hex.DecodeString(head.PublicKey); err != nil || !want.Equal(ed25519.PublicKey(got)) {
					return fail(fmt.Errorf("the server signs with public key %q, not the -pub given (%x): its report would not prove anything about the chain you trust", head.PublicKey, []byte(want)))
				}
			}
			var in any
			if witnessed != nil {
				in = witnessed
			}
			path := "/audit/verify"
			if *checkIndex {
				path += "?index=true"
			}
			if err := a.do("POST", path, in, &rep); err != nil {
				return fail(err)
			}
		}
		return printReport(stdout, rep, *acceptUnsigned, *checkIndex)
	case "query", "consultations":
		query, err := q.query()
		if err != nil {
			return fail(err)
		}
		if sub == "consultations" && query.Subject == "" {
			return fail(errors.New("-subject ID is required: the person whose consultations to list"))
		}
		if *dir != "" && query.Subject != "" && *subjectKeyFile == "" {
			return fail(errors.New("-subject offline needs -subject-key-file FILE: the subject key fsb serve -subject-key-file names (records hold pseudonyms, not identifiers)"))
		}
		s, a, err := open()
		if err != nil {
			return fail(err)
		}
		if s != nil {
			defer s.Close()
		}
		var lines []any
		var next string
		if sub == "query" {
			var page audit.Page
			if s != nil {
				page, err = s.Query(ctx, query)
			} else {
				err = a.do("POST", "/audit/records/search", searchBody(query), &page)
			}
			for _, e := range page.Entries {
				lines = append(lines, e)
			}
			next = page.Next
		} else {
			var page audit.ConsultationPage
			if s != nil {
				page, err = s.Consultations(ctx, query.Subject, query)
			} else {
				err = a.do("POST", "/audit/consultations/search", searchBody(query), &page)
			}
			for _, c := range page.Consultations {
				lines = append(lines, c)
			}
			next = page.Next
		}
		if err != nil {
			return fail(err)
		}
		enc := json.NewEncoder(stdout)
		for _, l := range lines {
			_ = enc.Encode(l)
		}
		if next != "" {
			fmt.Fprintf(stderr, "more: -cursor %s\n", next)
		}
		return 0
	case "export":
		s, a, err := open()
		if err != nil {
			return fail(err)
		}
		if s != nil {
			defer s.Close()
		}
		w := stdout
		var file *os.File
		if *out != "" {
			f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fail(err)
			}
			w, file = f, f
			report := fail
			fail = func(err error) int { // no empty or partial export is left behind
				f.Close()
				os.Remove(*out)
				return report(err)
			}
		}
		if s != nil {
			if _, err := s.Export(ctx, w, audit.ExportOptions{From: *from, To: *to}); err != nil {
				return fail(err)
			}
		} else {
			var raw []byte
			if err := a.do("GET", fmt.Sprintf("/audit/export?from=%d&to=%d", *from, *to), nil, &raw); err != nil {
				return fail(err)
			}
			if _, err := w.Write(raw); err != nil {
				return fail(err)
			}
		}
		if file != nil {
			if err := file.Sync(); err != nil {
				return fail(err)
			}
			if err := file.Close(); err != nil {
				return fail(err)
			}
		}
		return 0
	case "prune":
		if *dir == "" { // online: the server applies its own retention
			a, err := af.client()
			if err != nil {
				return fail(err)
			}
			var rep audit.PruneReport
			if err := a.do("POST", "/audit/prune", nil, &rep); err != nil {
				return fail(err)
			}
			b, _ := json.MarshalIndent(rep, "", "  ")
			fmt.Fprintln(stdout, string(b))
			return 0
		}
		if *keyFile == "" || *configFile == "" {
			return fail(errors.New("usage: fsb audit prune -dir DIR -key FILE -config FILE [-now TIME] (offline: stop the server first), or fsb audit prune -admin URL -admin-token-file FILE"))
		}
		cfg, err := loadAuditConfig(*configFile)
		if err != nil {
			return fail(err)
		}
		key, err := loadEd25519Key(*keyFile)
		if err != nil {
			return fail(err)
		}
		at := time.Now()
		if *now != "" {
			if at, err = time.Parse(time.RFC3339Nano, *now); err != nil {
				return fail(fmt.Errorf("-now: %w", err))
			}
		}
		opt := cfg.options(*dir, key)
		opt.Logger = slog.New(slog.DiscardHandler)
		s, err := audit.Open(opt)
		if err != nil {
			return fail(fmt.Errorf("open %s (stop the server first, or use -admin): %w", *dir, err))
		}
		rep, err := s.Prune(ctx, at)
		if cerr := s.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			return fail(err)
		}
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return 0
	case "backup":
		if *out == "" {
			return fail(errors.New("usage: fsb audit backup -out FILE with -dir DIR (offline: stop the server first) or -admin URL -admin-token-file FILE"))
		}
		if *dir == "" {
			a, err := af.client()
			if err != nil {
				return fail(err)
			}
			n, err := a.backup(*out)
			if err != nil {
				return fail(err)
			}
			fmt.Fprintf(stdout, "backed up the running store (%d bytes) to %s\n", n, *out)
			return 0
		}
		s, _, err := open()
		if err != nil {
			return fail(err)
		}
		defer s.Close()
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fail(err)
		}
		if err := s.Backup(ctx, f); err != nil {
			f.Close()
			os.Remove(*out)
			return fail(err)
		}
		if err := errors.Join(f.Sync(), f.Close()); err != nil {
			return fail(err)
		}
		head := s.Head()
		fmt.Fprintf(stdout, "backed up records through %d (chain %s) to %s\n", head.Seq, head.Hash, *out)
		return 0
	case "restore":
		if fs.NArg() != 1 || *dir == "" || (*pubHex == "" && *keyFile == "") {
			return fail(errors.New("usage: fsb audit restore -dir NEWDIR -pub HEX|-key FILE BACKUP"))
		}
		pub, err := offlinePub(*pubHex, *keyFile)
		if err != nil {
			return fail(err)
		}
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		// What existed before decides what a failure may remove: a
		// directory restore created goes, an empty one is emptied again,
		// anything else (audit.Restore refuses it) is left alone.
		ents, statErr := os.ReadDir(*dir)
		created := errors.Is(statErr, os.ErrNotExist)
		ours := created || (statErr == nil && len(ents) == 0)
		undo := func(err error) int {
			if ours {
				if rerr := removeRestored(*dir, created); rerr != nil {
					fmt.Fprintf(stderr, "fsb audit restore: could not remove the partly restored %s: %v\n", *dir, rerr)
				} else {
					fmt.Fprintf(stderr, "fsb audit restore: removed the partly restored files from %s\n", *dir)
				}
			}
			if err != nil {
				return fail(err)
			}
			return 1
		}
		if err := audit.Restore(ctx, *dir, f); err != nil {
			if !ours {
				return fail(err)
			}
			return undo(err)
		}
		// A restore is only done once the chain it brought back verifies.
		s, _, err := open()
		if err != nil {
			return undo(err)
		}
		rep, err := audit.Verify(ctx, s, pub)
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return undo(err)
		}
		if code := printReport(stdout, rep, *acceptUnsigned, false); code != 0 {
			return undo(nil)
		}
		return 0
	case "verify-proof":
		pub, f, err := pubAndFile(fs, *pubHex, sub)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		var p audit.Proof
		dec := json.NewDecoder(f)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return fail(fmt.Errorf("%s: not a proof: %w", fs.Arg(0), err))
		}
		if err := audit.VerifyProof(pub, p); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "ok: record %d is in the chain up to checkpoint %d, signed by %x\n", p.Seq, p.Checkpoint.Seq, []byte(pub))
		return 0
	case "witness":
		if *dir != "" || *out == "" {
			return fail(errors.New("usage: fsb audit witness -out FILE -admin URL -admin-token-file FILE [-pub HEX]: a witness reads the running server, and keeps what it read outside the store"))
		}
		_, a, err := open()
		if err != nil {
			return fail(err)
		}
		var head auditHead
		if err := a.do("GET", "/audit/head", nil, &head); err != nil {
			return fail(err)
		}
		if head.Checkpoint == nil {
			return fail(errors.New("the store has signed no checkpoint yet: nothing to keep"))
		}
		if *pubHex != "" {
			pub, err := parsePublicKey(*pubHex)
			if err != nil {
				return fail(err)
			}
			if !head.Checkpoint.Valid(pub) {
				return fail(fmt.Errorf("the checkpoint at %d is not signed by the -pub given (the server signs with %q): not kept", head.Checkpoint.Seq, head.PublicKey))
			}
		}
		line, _ := json.Marshal(head.Checkpoint)
		if err := appendLine(*out, line); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "kept the checkpoint at record %d, signed %s, in %s\n", head.Checkpoint.Seq, head.Checkpoint.Time.Format(time.RFC3339), *out)
		return 0
	case "proof":
		seq, err := strconv.ParseUint(fs.Arg(0), 10, 64)
		if fs.NArg() != 1 || err != nil {
			return fail(errors.New("usage: fsb audit proof SEQ [-dir DIR | -admin URL -admin-token-file FILE]"))
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

// auditHead is what GET /admin/audit/head answers (of it, what the CLI reads).
type auditHead struct {
	Checkpoint *audit.Checkpoint `json:"checkpoint"` // the last signed one; nil before the first
	PublicKey  string            `json:"publicKey"`  // hex
}

// appendLine appends b and a newline to the file name (created 0600) and
// syncs it.
func appendLine(name string, b []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readWitnessFiles reads the checkpoints of every -witness file.
func readWitnessFiles(paths []string) ([]audit.Checkpoint, error) {
	var all []audit.Checkpoint
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("-witness: %w", err)
		}
		cks, err := audit.ReadWitnessed(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("-witness %s: %w", p, err)
		}
		all = append(all, cks...)
	}
	return all, nil
}

// rebuildIndex is what to do about an index that does not match its log.
const rebuildIndex = "stop the server, delete the store's index directory, and start it again (it rebuilds the index from the log)"

func printReport(w io.Writer, rep audit.Report, acceptUnsigned, wantIndex bool) int {
	b, _ := json.MarshalIndent(rep, "", "  ")
	fmt.Fprintln(w, string(b))
	if !rep.OK() {
		fmt.Fprintf(w, "FAILED at record %d: %s (%s)\n", rep.Problem.Seq, rep.Problem.Kind, rep.Problem.Detail)
		return 1
	}
	code := 0
	switch n := rep.UnsignedRedactions; {
	case n > 0 && !acceptUnsigned:
		fmt.Fprintf(w, "FAILED: %d records were redacted without a signature: their content was erased by someone with access to the files, unless the store was migrated from the Badger format or pruned before redactions were signed (then -accept-unsigned-redactions accepts them)\n", n)
		code = 1
	default:
		fmt.Fprintf(w, "ok: records %d–%d verified, signed through %d, %d unsigned\n", rep.First, rep.Last, rep.Signed, rep.Unsigned())
		if n > 0 {
			fmt.Fprintf(w, "ok: %d records redacted without a signature, accepted (-accept-unsigned-redactions)\n", n)
		}
	}
	if rep.Witnessed > 0 {
		fmt.Fprintf(w, "ok: the chain holds the witnessed checkpoints, the last at record %d\n", rep.Witnessed)
	}
	switch ix := rep.Index; {
	case ix == nil && wantIndex:
		fmt.Fprintln(w, "FAILED: the index was not checked (a server that does not know -index?)")
		code = 1
	case ix == nil:
	case ix.Error != "":
		fmt.Fprintf(w, "FAILED: the index could not be checked: %s; %s\n", ix.Error, rebuildIndex)
		code = 1
	case ix.Mismatch != nil:
		fmt.Fprintf(w, "FAILED: the index does not match the log for records %d–%d: an index file was edited or damaged, and queries and the citizen view may miss records there; %s\n", ix.Mismatch.From, ix.Mismatch.Through, rebuildIndex)
		code = 1
	case ix.From > ix.Through:
		fmt.Fprintln(w, "ok: the index's files answer for no kept record yet (nothing to check)")
	default:
		fmt.Fprintf(w, "ok: the index matches the log for records %d–%d (%d pairs)\n", ix.From, ix.Through, ix.Pairs)
	}
	return code
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

// auditConfig is the file `fsb serve -audit-config` and `fsb audit prune
// -config` read: retention and body storage per service, how often the
// server prunes, and the free space the store keeps. For example:
//
//	retention: 3650d        # services not listed; absent or 0 keeps forever
//	pruneEvery: 1h          # fsb serve prunes this often (default 1h if any retention is set)
//	minFreeSpace: 256MiB    # below this, calls are refused (serviceUnavailable)
//	bodyKeyFile: body.key   # AES-256 key (fsb audit secret) for services that store bodies
//	services:
//	  person: {retention: 180d, storeBodies: true, subjectInClear: false}
type auditConfig struct {
	Retention    string                   `yaml:"retention"`
	PruneEvery   string                   `yaml:"pruneEvery"`
	MinFreeSpace string                   `yaml:"minFreeSpace"`
	BodyKeyFile  string                   `yaml:"bodyKeyFile"`
	Services     map[string]servicePolicy `yaml:"services"`

	def        audit.Policy
	services   map[string]audit.Policy
	pruneEvery time.Duration
	minFree    int64
	bodyKey    *audit.Key
}

type servicePolicy struct {
	Retention      string `yaml:"retention"`
	StoreBodies    bool   `yaml:"storeBodies"`
	SubjectInClear bool   `yaml:"subjectInClear"`
}

// loadAuditConfig reads and checks an audit configuration; unknown keys
// are errors. Relative key paths are relative to the file.
func loadAuditConfig(name string) (*auditConfig, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var c auditConfig
	if err := yaml.UnmarshalWithOptions(b, &c, yaml.Strict(), yaml.DisallowUnknownField()); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	bad := func(field string, err error) (*auditConfig, error) {
		return nil, fmt.Errorf("%s: %s: %w", name, field, err)
	}
	if c.def.Retention, err = parseRetention(c.Retention); err != nil {
		return bad("retention", err)
	}
	anyRetention, anyBodies := c.def.Retention > 0, false
	c.services = map[string]audit.Policy{}
	for svc, p := range c.Services {
		r, err := parseRetention(p.Retention)
		if err != nil {
			return bad("services."+svc+".retention", err)
		}
		if p.Retention == "" {
			r = c.def.Retention // a listed service without retention keeps the default's
		}
		c.services[svc] = audit.Policy{Retention: r, StoreBodies: p.StoreBodies, SubjectInClear: p.SubjectInClear}
		anyRetention = anyRetention || r > 0
		anyBodies = anyBodies || p.StoreBodies
	}
	if c.PruneEvery != "" {
		if c.pruneEvery, err = parseRetention(c.PruneEvery); err != nil || c.pruneEvery < time.Minute {
			return bad("pruneEvery", errors.New("a duration of at least 1m"))
		}
	} else if anyRetention {
		c.pruneEvery = time.Hour
	}
	if c.MinFreeSpace != "" {
		if c.minFree, err = parseSize(c.MinFreeSpace); err != nil {
			return bad("minFreeSpace", err)
		}
		if c.minFree == 0 {
			c.minFree = -1 // 0 in the file turns the check off
		}
	}
	if anyBodies && c.BodyKeyFile == "" {
		return bad("bodyKeyFile", errors.New("required: a service stores bodies"))
	}
	if c.BodyKeyFile != "" {
		kf := c.BodyKeyFile
		if !filepath.IsAbs(kf) {
			kf = filepath.Join(filepath.Dir(name), kf)
		}
		k, err := loadSecret(kf)
		if err != nil {
			return bad("bodyKeyFile", err)
		}
		// AES-256 wants exactly 32 bytes: derive them from the whole secret
		// (the file holds hex text; its first 32 characters carry 128 bits).
		key := sha256.Sum256(append([]byte("openfsb-body-key\x00"), k.Secret...))
		id := sha256.Sum256(append([]byte("openfsb-body-key-id\x00"), k.Secret...))
		c.bodyKey = &audit.Key{ID: hex.EncodeToString(id[:4]), Secret: key[:]}
	}
	return &c, nil
}

// options are the store options the configuration asks for.
func (c *auditConfig) options(dir string, signer ed25519.PrivateKey) audit.Options {
	o := audit.Options{Dir: dir, Default: c.def, Services: c.services, MinFreeSpace: c.minFree}
	if signer != nil {
		o.Signer = signer
	}
	if c.bodyKey != nil {
		o.BodyKeys = []audit.Key{*c.bodyKey}
	}
	return o
}

// runPruner applies the retention every c.pruneEvery until ctx is
// done (which also stops a running prune at its next step); a failed
// prune is logged and retried at the next tick.
func (c *auditConfig) runPruner(ctx context.Context, s *audit.Store, log *slog.Logger) {
	if c == nil || c.pruneEvery <= 0 {
		return
	}
	t := time.NewTicker(c.pruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, c.pruneEvery)
			rep, err := s.Prune(pctx, time.Now())
			cancel()
			switch {
			case err != nil && ctx.Err() != nil:
				log.Info("audit: prune stopped by the shutdown", "err", err)
			case err != nil:
				log.Error("audit: prune failed", "err", err)
			case rep.Deleted+rep.Redacted > 0:
				log.Info("audit: pruned", "deleted", rep.Deleted, "redacted", rep.Redacted)
			}
		}
	}
}

// parseRetention reads a Go duration, or a whole number of days ("180d")
// or years of 365 days ("10y"); "" and "0" keep forever.
func parseRetention(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "y": 365 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.ParseUint(n, 10, 32)
			if err != nil || v == 0 {
				return 0, fmt.Errorf("%q: a whole number of %s", s, map[string]string{"d": "days", "y": "years"}[suffix])
			}
			return time.Duration(v) * unit, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: a duration such as 180d, 10y or 720h", s)
	}
	return d, nil
}

// parseSize reads bytes: "1048576", "512KiB", "256MiB", "2GiB".
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("%q: a size such as 256MiB", s)
	}
	return v * mult, nil
}

// openAudit opens the audit trail of `fsb serve` in dir with its
// configuration cfg (audit.config: retention, pruning, free space; never
// nil) and starts its pruner; stop ends the pruner (nil when there is
// none). onCommit, when not nil, hears every synced batch (metrics).
func openAudit(dir string, key ed25519.PrivateKey, subject audit.Key, cfg *auditConfig, log *slog.Logger,
	onCommit func(records int, d time.Duration, err error)) (s *audit.Store, stop func(), err error) {
	opt := cfg.options(dir, key)
	opt.SubjectKeys, opt.Logger, opt.OnCommit = []audit.Key{subject}, log, onCommit
	if s, err = audit.Open(opt); err != nil {
		return nil, nil, err
	}
	if cfg.pruneEvery <= 0 {
		return s, nil, nil
	}
	stop = stoppable(func(ctx context.Context) { cfg.runPruner(ctx, s, log) }, pruneStopWait, func() {
		// A prune stuck in a write or sync: Close, bounded too, says so;
		// the shutdown goes on.
		log.Warn("audit: a prune is still running; shutting down without it", "waited", pruneStopWait)
	})
	return s, stop, nil
}

// pruneStopWait bounds how long stopping the pruner waits for a running
// prune.
const pruneStopWait = 10 * time.Second

// stoppable runs fn in the background; stop cancels fn's ctx (a running
// prune stops at its next step) and waits for fn to return, at most wait:
// then it calls late and returns, leaving fn to end on its own.
func stoppable(fn func(ctx context.Context), wait time.Duration, late func()) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	return func() {
		cancel()
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			late()
		}
	}
}

// removeRestored removes what a failed restore wrote into dir: dir itself
// when the restore created it, else its entries (it was empty before).
func removeRestored(dir string, created bool) error {
	if created {
		return os.RemoveAll(dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	return errors.Join(errs...)
}

// backup streams GET /audit/backup into a new file name (mode 0600). The
// server streams the backup, so a failure on its side after the first byte
// only ends the answer early: the answer is read as the tar archive it is
// and refused, the file removed, unless it ends with the archive's end
// marker.
func (a *adminClient) backup(name string) (n int64, err error) {
	req, err := http.NewRequest("GET", a.base+gateway.AdminPath+"/audit/backup", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if a.actor != "" {
		req.Header.Set(gateway.HeaderAdminActor, a.actor)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return 0, problemError(resp, b)
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(name)
		}
	}()
	cr := &countingReader{r: io.TeeReader(resp.Body, f)}
	if err := checkTar(cr); err != nil {
		return cr.n, fmt.Errorf("the backup was cut short after %d bytes (%v); nothing kept: see the server's log", cr.n, err)
	}
	// Anything after the end marker is read too, so a longer answer is not
	// silently cut either.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return cr.n, fmt.Errorf("the backup was cut short after %d bytes (%v); nothing kept", cr.n, err)
	}
	return cr.n, errors.Join(f.Sync(), f.Close())
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// checkTar reads a tar archive to its end and fails unless the end marker
// (two zero blocks) is there: archive/tar alone takes an archive cut at a
// file boundary for a complete one.
func checkTar(cr *countingReader) error {
	tr := tar.NewReader(cr)
	for {
		before := cr.n
		_, err := tr.Next()
		if err == io.EOF {
			// The padding of the last file (under 512 bytes) and then the
			// two zero blocks of 512 bytes were read.
			if cr.n-before < 1024 {
				return errors.New("no end-of-archive marker")
			}
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return err
		}
	}
}

// problemError reads a problem answer the way adminClient.do does.
func problemError(resp *http.Response, b []byte) error {
	var p struct {
		Title, Detail string
	}
	if json.Unmarshal(b, &p) == nil && p.Title != "" {
		msg := fmt.Sprintf("%d %s", resp.StatusCode, p.Title)
		if p.Detail != "" {
			msg += ": " + p.Detail
		}
		return errors.New(msg)
	}
	return errors.New(resp.Status)
}

// pubAndFile reads the -pub HEX FILE of verify-export and verify-proof and
// opens FILE.
func pubAndFile(fs *flag.FlagSet, pubHex, sub string) (ed25519.PublicKey, *os.File, error) {
	if fs.NArg() != 1 || pubHex == "" {
		return nil, nil, fmt.Errorf("usage: fsb audit %s -pub HEX FILE", sub)
	}
	pub, err := parsePublicKey(pubHex)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(fs.Arg(0))
	return pub, f, err
}
