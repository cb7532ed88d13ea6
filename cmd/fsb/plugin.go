package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/openfsb/fsb/engine/plugin"
	"github.com/openfsb/fsb/engine/wasm"
)

// cmdPlugin holds the plugin author's commands: build, inspect, run.
func cmdPlugin(args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, `usage: fsb plugin <command> [flags] ARG

commands:
  build DIR     build the Go plugin in DIR to DIR/<name>.wasm and print its digest
  inspect FILE  print a module's ABI version, exports, imports, size and digest
  run FILE      run one operation of a module on an input, as a flow step would

Run 'fsb plugin <command> -h' for its flags.`)
	}
	if len(args) == 0 {
		usage()
		return 2
	}
	switch args[0] {
	case "build":
		return pluginBuild(args[1:], stdout, stderr)
	case "inspect":
		return pluginInspect(args[1:], stdout, stderr)
	case "run":
		return pluginRun(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		usage()
		return 0
	}
	fmt.Fprintf(stderr, "fsb plugin: unknown command %q\n", args[0])
	usage()
	return 2
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func pluginBuild(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plugin build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "output file (default DIR/<dir name>.wasm)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fsb plugin build [-o FILE] DIR\n\nBuilds the Go plugin (package main using sdk/guest) in DIR with\nGOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath, and prints its digest.")
		fs.PrintDefaults()
	}
	if code, ok := parseInterspersed(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	dir := fs.Arg(0)
	abs, err := filepath.Abs(dir)
	if err != nil {
		fmt.Fprintln(stderr, "fsb plugin build:", err)
		return 1
	}
	target := *out
	if target == "" {
		target = filepath.Join(abs, filepath.Base(abs)+".wasm")
	}
	target, _ = filepath.Abs(target)
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", target, ".")
	cmd.Dir = abs
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(stderr, "fsb plugin build: go build failed: %v\n", err)
		return 1
	}
	b, err := os.ReadFile(target)
	if err != nil {
		fmt.Fprintln(stderr, "fsb plugin build:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n%s  %d bytes\n", target, digestOf(b), len(b))
	return 0
}

func pluginInspect(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plugin inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	native := fs.Bool("connector", false, "describe the native connector process of file sources instead (started, asked, stopped)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fsb plugin inspect FILE\n       fsb plugin inspect -connector\n\nPrints the module's digest, size, exports and imports, and whether the\nsandbox accepts it (ABI version, export signatures, imports); with\n-connector, how the native connector process runs and what it serves.")
		fs.PrintDefaults()
	}
	if code, ok := parseInterspersed(fs, args); !ok {
		return code
	}
	if *native && fs.NArg() == 0 {
		return inspectConnector(stdout, stderr)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	b, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "fsb plugin inspect:", err)
		return 1
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	cm, err := rt.CompileModule(ctx, b)
	if err != nil {
		fmt.Fprintf(stderr, "fsb plugin inspect: not a WebAssembly module: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "file     %s\ndigest   %s\nsize     %d bytes\n", fs.Arg(0), digestOf(b), len(b))
	exports := cm.ExportedFunctions()
	names := make([]string, 0, len(exports))
	for n := range exports {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(stdout, "exports")
	for _, n := range names {
		fmt.Fprintf(stdout, "  %-14s %s\n", n, signature(exports[n]))
	}
	for n := range cm.ExportedMemories() {
		fmt.Fprintf(stdout, "  %-14s memory\n", n)
	}
	fmt.Fprintln(stdout, "imports") // as the module lists them (a Go module imports fd_write twice)
	imports := cm.ImportedFunctions()
	width := 0
	for _, f := range imports {
		mod, name, _ := f.Import()
		width = max(width, len(mod)+1+len(name))
	}
	for _, f := range imports {
		mod, name, _ := f.Import()
		fmt.Fprintf(stdout, "  %-*s %s\n", width, mod+"."+name, signature(f))
	}
	// The sandbox's own verdict: the same checks as at load, plus abi_version.
	host, err := wasm.NewHost(ctx, wasm.HostConfig{})
	if err != nil {
		fmt.Fprintln(stderr, "fsb plugin inspect:", err)
		return 1
	}
	defer host.Close(ctx)
	m, err := host.Load(ctx, wasm.ModuleSpec{Name: filepath.Base(fs.Arg(0)), Wasm: b, Digest: strings.TrimPrefix(digestOf(b), "sha256:"), PoolSize: 1})
	if err != nil {
		fmt.Fprintf(stdout, "verdict  refused: %v\n", err)
		return 1
	}
	defer m.Close(ctx)
	fmt.Fprintf(stdout, "verdict  accepted: ABI version %d, operations %s\n", wasm.ABIVersion, strings.Join(m.Operations(), ", "))
	return 0
}

func signature(f api.FunctionDefinition) string {
	types := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	return types(f.ParamTypes()) + " -> " + types(f.ResultTypes())
}

func pluginRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plugin run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	op := fs.String("op", "transform", "the operation to call")
	inFile := fs.String("input", "-", "input file (- for standard input)")
	config := fs.String("config", "{}", "configuration JSON")
	timeout := fs.Duration("timeout", wasm.DefaultTimeout, "wall-clock limit of the call (the engine's default; raise it to debug)")
	maxMemory := fs.Int("max-memory", wasm.DefaultMaxMemory, "bytes of linear memory the instance may have")
	maxInput := fs.Int("max-input", wasm.DefaultMaxInput, "largest input in bytes")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fsb plugin run [flags] FILE\n\nRuns one operation of a module in the sandbox, as a transform step would,\nand prints its output; guest logs go to standard error.")
		fs.PrintDefaults()
	}
	if code, ok := parseInterspersed(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	b, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "fsb plugin run:", err)
		return 1
	}
	var input []byte
	if *inFile == "-" {
		input, err = io.ReadAll(os.Stdin)
	} else {
		input, err = os.ReadFile(*inFile)
	}
	if err != nil {
		fmt.Fprintln(stderr, "fsb plugin run: input:", err)
		return 1
	}
	log, _ := (&serveFlags{logLevel: "debug"}).logger(stderr)
	ctx := context.Background()
	host, err := wasm.NewHost(ctx, wasm.HostConfig{Log: log})
	if err != nil {
		fmt.Fprintln(stderr, "fsb plugin run:", err)
		return 1
	}
	defer host.Close(ctx)
	m, err := host.Load(ctx, wasm.ModuleSpec{Name: filepath.Base(fs.Arg(0)), Wasm: b, Digest: strings.TrimPrefix(digestOf(b), "sha256:"),
		Limits: wasm.Limits{Timeout: *timeout, MaxMemory: *maxMemory, MaxInput: *maxInput}, PoolSize: 1, Operations: []string{*op}})
	if err != nil {
		fmt.Fprintln(stderr, "fsb plugin run:", err)
		return 1
	}
	defer m.Close(ctx)
	out, err := m.Call(wasm.WithStep(ctx, "cli"), *op, input, []byte(*config))
	if err != nil {
		// The guest's own message is logged, not in Error(): say it here too.
		var we *wasm.Error
		if errors.As(err, &we) && we.Message != "" {
			fmt.Fprintf(stderr, "fsb plugin run: %v: %s\n", err, we.Message)
		} else {
			fmt.Fprintln(stderr, "fsb plugin run:", err)
		}
		return 1
	}
	stdout.Write(out)
	fmt.Fprintln(stdout)
	return 0
}

// parseInterspersed parses flags before and after the positional
// arguments (fsb plugin build DIR -o FILE works too). ok is false when the
// command must stop with code: 0 after -h, 2 after a bad flag.
func parseInterspersed(fs *flag.FlagSet, args []string) (code int, ok bool) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0, false
			}
			return 2, false
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	_ = fs.Parse(positional) // they hold no flag: sets fs.Args
	return 0, true
}

// inspectConnector starts the native connector process of file sources as
// fsb serve would (this executable, pinned by its SHA-256, no inherited
// environment, gRPC over mutual TLS), asks it what it serves, and stops it.
func inspectConnector(stdout, stderr io.Writer) int {
	cfg, err := connectorConfig(slog.New(slog.DiscardHandler))()
	if err != nil {
		fmt.Fprintln(stderr, "fsb plugin inspect:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), plugin.DefaultStartTimeout)
	defer cancel()
	sup, err := plugin.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "fsb plugin inspect:", err)
		return 1
	}
	defer sup.Close()
	info, err := sup.Info(ctx)
	if err != nil {
		fmt.Fprintln(stdout, "verdict  refused: "+err.Error())
		return 1
	}
	fmt.Fprintf(stdout, "connector  %s %s (fsb %s)\n", info.Name, info.Version, strings.Join(cfg.Args, " "))
	fmt.Fprintf(stdout, "executable %s\n", cfg.Path)
	fmt.Fprintf(stdout, "checksum   sha256:%s (checked at every launch)\n", strings.TrimPrefix(cfg.Checksum, "sha256:"))
	fmt.Fprintf(stdout, "protocols  %s\n", strings.Join(info.Protocols, ", "))
	fmt.Fprintln(stdout, "transport  go-plugin, gRPC over mutual TLS; no host environment")
	fmt.Fprintf(stdout, "restarts   backoff %v doubling to %v, reset after %v up\n", plugin.DefaultMinBackoff, plugin.DefaultMaxBackoff, plugin.DefaultStableAfter)
	fmt.Fprintf(stdout, "verdict    started and answered (pid %d), stopped\n", info.PID)
	return 0
}
