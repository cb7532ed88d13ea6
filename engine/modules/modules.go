// Package modules loads the WebAssembly modules that Plugin documents
// declare into a wasm.Host, for the flow engine's transform steps. It owns
// the mapping from a Plugin document to a wasm.ModuleSpec (file, digest,
// limits, capabilities); the sandbox itself is engine/wasm's.
package modules

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/spec"
	"github.com/openfsb/fsb/engine/wasm"
	"github.com/openfsb/fsb/sdk/jsonx"
)

// Open starts a wasm host and loads the set's plugins into it; close
// closes the host and with it every module. A set without plugins gets
// no host and a no-op close.
func Open(ctx context.Context, set *spec.Set, opt Options) (plugins map[string]flow.Plugin, close func(), err error) {
	if len(set.Plugins) == 0 {
		return nil, func() {}, nil
	}
	host, err := wasm.NewHost(ctx, wasm.HostConfig{CacheDir: opt.CacheDir, Log: opt.Log})
	if err != nil {
		return nil, nil, err
	}
	close = func() { _ = host.Close(context.Background()) }
	if plugins, err = Load(ctx, host, set, opt); err != nil {
		close()
		return nil, nil, err
	}
	return plugins, close, nil
}

// Options says where plugin secrets come from, and how the host runs.
type Options struct {
	// CacheDir and Log configure the host Open starts (wasm.HostConfig).
	CacheDir string
	Log      *slog.Logger

	// LookupEnv reads environment variables (nil: os.LookupEnv).
	LookupEnv func(string) (string, bool)
	// TestSecrets reads no secret: each gets the value "test-secret-" + its
	// configuration key, for flow tests (fsb test) and validation, which
	// must give the same answers wherever they run.
	TestSecrets bool
}

// Load reads, verifies and compiles every plugin of the set and reads its
// secrets, then checks that each transform step's operation exists. On
// error it returns a spec.ErrorList with every problem at its document
// position, and closes what it loaded.
func Load(ctx context.Context, host *wasm.Host, set *spec.Set, opt Options) (map[string]flow.Plugin, error) {
	out := map[string]flow.Plugin{}
	var errs spec.ErrorList
	for _, name := range sortedNames(set.Plugins) {
		pl := set.Plugins[name]
		secrets, err := readSecrets(pl, opt)
		if err != nil {
			errs = append(errs, set.Src.Errorf(where(pl.At, "secrets", pl.Pos), "plugin %q: %v", name, err))
			continue
		}
		m, err := load(ctx, host, pl)
		if pe, ok := err.(*posError); ok {
			errs = append(errs, set.Src.Errorf(pe.at, "plugin %q: %v", name, pe.err))
			continue
		} else if err != nil {
			errs = append(errs, set.Src.Errorf(where(pl.At, "module", pl.Pos), "plugin %q: %v", name, err))
			continue
		}
		if secrets == nil {
			out[name] = m
		} else {
			out[name] = &withSecrets{Module: m, members: secrets}
		}
	}
	errs = append(errs, checkOperations(set, out)...)
	if len(errs) > 0 {
		for _, m := range out {
			_ = m.(interface{ Close(context.Context) error }).Close(ctx)
		}
		errs.Sort()
		return nil, errs
	}
	return out, nil
}

// checkOperations reports each transform step whose operation its loaded
// module does not export, at the step's position.
func checkOperations(set *spec.Set, plugins map[string]flow.Plugin) spec.ErrorList {
	var errs spec.ErrorList
	var walk func(steps []*spec.Step)
	walk = func(steps []*spec.Step) {
		for _, st := range steps {
			if tr := st.Transform; tr != nil {
				if m, ok := plugins[tr.Plugin].(interface{ Operations() []string }); ok {
					op := cmp.Or(tr.Op, "transform")
					if ops := m.Operations(); !slices.Contains(ops, op) {
						at := tr.Pos
						if p, ok := tr.At["op"]; ok {
							at = p
						}
						errs = append(errs, set.Src.Errorf(at, "step %q: plugin %q exports no operation %q (it has %s)", st.ID, tr.Plugin, op, strings.Join(ops, ", ")))
					}
				}
			}
			walk(st.Parallel)
			walk(st.Steps)
			if sw := st.Switch; sw != nil {
				for _, c := range sw.Cases {
					walk(c.Steps)
				}
				walk(sw.Default)
			}
			if fe := st.Foreach; fe != nil {
				walk(fe.Steps)
			}
		}
	}
	for _, name := range sortedNames(set.Flows) {
		walk(set.Flows[name].Steps)
	}
	return errs
}

// readSecrets reads a plugin's secrets and returns them as JSON object
// members (`"key":"value",`), or nil when it has none.
func readSecrets(pl *spec.Plugin, opt Options) ([]byte, error) {
	if len(pl.Secrets) == 0 {
		return nil, nil
	}
	var members []byte
	for _, k := range sortedNames(pl.Secrets) {
		v := "test-secret-" + k
		if !opt.TestSecrets {
			var err error
			if v, err = pl.Secrets[k].Read(opt.LookupEnv); err != nil {
				return nil, fmt.Errorf("secret %q: %w", k, err)
			}
		}
		members = jsonx.AppendString(members, k)
		members = jsonx.AppendString(append(members, ':'), v)
		members = append(members, ',')
	}
	return members, nil
}

// withSecrets adds a plugin's secrets to the configuration of every call.
// The flow's plans never hold them: the configuration a step compiles
// (engine/flow) is the documents', and spec refuses secrets written there.
type withSecrets struct {
	*wasm.Module
	members []byte // `"key":"value",` for each secret
}

// Call implements flow.Plugin.
func (p *withSecrets) Call(ctx context.Context, op string, input, config []byte) ([]byte, error) {
	// config is a JSON object from the flow's compiler ({} at least) whose
	// keys never name a secret (spec checks): the members go first.
	cfg := make([]byte, 0, len(config)+len(p.members))
	cfg = append(append(cfg, '{'), p.members...)
	if rest := bytes.TrimLeft(config, " \t\r\n"); len(rest) > 1 && rest[0] == '{' {
		if inner := bytes.TrimSpace(rest[1:]); len(inner) > 0 && inner[0] == '}' {
			cfg = append(cfg[:len(cfg)-1], '}') // no other member: drop the comma
		} else {
			cfg = append(cfg, rest[1:]...)
		}
	} else {
		cfg = append(cfg[:len(cfg)-1], '}')
	}
	return p.Module.Call(ctx, op, input, cfg)
}

func load(ctx context.Context, host *wasm.Host, pl *spec.Plugin) (*wasm.Module, error) {
	b, err := os.ReadFile(pl.ModulePath())
	if err != nil {
		return nil, fmt.Errorf("read module: %w", err)
	}
	// wasm.Host checks the digest too; here the error can point at the line.
	if sum := sha256.Sum256(b); pl.Digest != "sha256:"+hex.EncodeToString(sum[:]) {
		return nil, &posError{where(pl.At, "digest", pl.Pos), fmt.Errorf("digest mismatch: declared %s, the module %s is sha256:%x (a changed or wrong module; if you rebuilt it on purpose, fsb plugin inspect prints the new digest)", pl.Digest, pl.Module, sum)}
	}
	ms := wasm.ModuleSpec{
		Name:         pl.Name,
		Wasm:         b,
		Digest:       strings.TrimPrefix(pl.Digest, "sha256:"),
		Capabilities: pl.Capabilities,
		PoolSize:     pl.Pool,
	}
	if pl.Trusted {
		ms.Trust = wasm.Trusted
	}
	if l := pl.Limits; l != nil {
		ms.Limits = wasm.Limits{MaxMemory: int(l.MaxMemory), Timeout: l.Timeout.D(), MaxInput: int(l.MaxInput), MaxOutput: int(l.MaxOutput)}
	}
	return host.Load(ctx, ms)
}

// posError is an error about one key of a plugin document.
type posError struct {
	at  spec.Pos
	err error
}

func (e *posError) Error() string { return e.err.Error() }

func where(at map[string]spec.Pos, key string, def spec.Pos) spec.Pos {
	if p, ok := at[key]; ok {
		return p
	}
	return def
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
