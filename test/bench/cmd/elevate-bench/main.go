// Command elevate-bench is Elevate's load comparison and the measurements
// of the performance issue that a Go benchmark cannot make. In one run on
// one machine it starts, on free loopback ports:
//
//   - redis-server, loaded with the standard fixture (test/bench/fixture:
//     10 000 principals, 0-3 live elevations each, five roles);
//   - Elevate, the built binary, on that Redis;
//   - upstream `opa run --server --optimize-store-for-read-speed`, built
//     from the module Elevate pins, with the same policies and roles, a
//     small wrapper reading data.elevations[input.subject], and the same
//     elevations pushed as data;
//   - a bare net/http handler answering a constant, the ceiling;
//
// drives each with wrk (the same request mix, fixed connection counts) and
// the gRPC ext_authz Check with ghz, and prints one table. It then measures
// what matters beyond throughput: a CPU profile of /v1/authorize under
// load, activation throughput, how fast a second replica sharing the Redis
// sees an activation and a deactivation, how fast an ended elevation is
// denied, Redis memory per active elevation, and decision latency with a
// thousand and a million active elevations. `make bench` runs it; it is
// never part of `make test`.
//
// Usage (from the repository root, after `make build opa`):
//
//	go run ./test/bench/cmd/elevate-bench -elevate bin/elevate -opa bin/opa [-phases table,grpc,...]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// phases in the order they run.
var allPhases = []string{"table", "grpc", "profile", "activation", "replicas", "memory", "scale"}

type bench struct {
	root, tmp, out               string
	elevateBin, opaBin           string
	wrkBin, ghzBin               string
	threads                      int
	conns                        []int
	duration, warmup             time.Duration
	logLevel                     string
	trials, endTrials            int
	memoryActivations, scaleSize int
	activationPrincipals         int
	phases                       map[string]bool

	procs        *procs
	jwt          *idp
	gatewayToken string
	rep          report
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "child-bare":
			os.Exit(childBare(os.Args[2]))
		case "child-elevate-pprof":
			os.Exit(childElevatePprof(os.Args[2], os.Args[3:]))
		}
	}
	os.Exit(run())
}

func run() int {
	b := &bench{procs: &procs{}}
	var conns, phases, gobench, logDir string
	flag.StringVar(&b.root, "root", ".", "repository root (policies/, bundles/demo/, test/bench/fixture/)")
	flag.StringVar(&b.elevateBin, "elevate", "bin/elevate", "the elevate binary to measure (`make build`)")
	flag.StringVar(&b.opaBin, "opa", "bin/opa", "upstream opa built from the pinned module (`make opa`)")
	flag.StringVar(&b.out, "out", "bin/bench", "directory for the report and the CPU profile")
	flag.IntVar(&b.threads, "threads", 2, "wrk threads")
	flag.StringVar(&conns, "conns", "16,64", "connection counts of the load comparison")
	flag.DurationVar(&b.duration, "duration", 10*time.Second, "length of each measured load run")
	flag.DurationVar(&b.warmup, "warmup", 2*time.Second, "unmeasured load before each run")
	flag.StringVar(&b.logLevel, "log-level", "info", "log level of Elevate and OPA (both default to info)")
	flag.IntVar(&b.trials, "trials", 200, "activation and deactivation trials on the second replica")
	flag.IntVar(&b.endTrials, "end-trials", 50, "elevations left to run out")
	flag.IntVar(&b.memoryActivations, "memory", 100_000, "activations for the Redis memory figure")
	flag.IntVar(&b.scaleSize, "scale", 1_000_000, "active elevations of the flat-scale measurement")
	flag.IntVar(&b.activationPrincipals, "activation-principals", 20_000, "principals the activation throughput run activates for")
	flag.StringVar(&phases, "phases", strings.Join(allPhases, ","), "phases to run: "+strings.Join(allPhases, ","))
	flag.StringVar(&gobench, "gobench", "", "output of the Go benchmarks, to report the policy evaluation median")
	flag.StringVar(&logDir, "logs", "", "keep every program's output in this directory (default: discarded)")
	flag.Parse()

	var err error
	if b.conns, err = parseInts(conns); err != nil {
		return usage("-conns: %v", err)
	}
	b.phases = map[string]bool{}
	for _, p := range strings.Split(phases, ",") {
		if !slices.Contains(allPhases, p) {
			return usage("-phases: unknown phase %q (one of %s)", p, strings.Join(allPhases, ","))
		}
		b.phases[p] = true
	}
	b.procs.logDir = logDir
	if gobench != "" {
		if b.rep.policy, err = readGoBench(gobench); err != nil {
			return usage("-gobench: %v", err)
		}
	}

	// Stop everything on Ctrl-C or SIGTERM as on any other end.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- b.runAll() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		err = errors.New("interrupted")
	}
	b.procs.stopAll()
	if b.tmp != "" {
		os.RemoveAll(b.tmp)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "elevate-bench:", err)
		return 1
	}
	return 0
}

func usage(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "elevate-bench: "+format+"\n", args...)
	flag.Usage()
	return 2
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func (b *bench) runAll() error {
	started := time.Now()
	var err error
	if b.root, err = filepath.Abs(b.root); err != nil {
		return err
	}
	for _, p := range []*string{&b.elevateBin, &b.opaBin, &b.out} {
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(b.root, *p)
		}
	}
	for _, bin := range []string{b.elevateBin, b.opaBin} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%w: build it first (make build opa)", err)
		}
	}
	if err := os.MkdirAll(b.out, 0o755); err != nil {
		return err
	}
	if b.tmp, err = os.MkdirTemp("", "elevate-bench-"); err != nil {
		return err
	}
	if b.wrkBin, err = ensureWrk(); err != nil {
		return err
	}
	if b.phases["grpc"] {
		if b.ghzBin, err = ensureGhz(); err != nil {
			return err
		}
	}
	if b.jwt, err = newIDP(b.tmp); err != nil {
		return err
	}
	b.gatewayToken = "bench-gateway-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	b.rep.machine = machine(b)

	if b.needsMain() {
		if err := b.mainPhases(); err != nil {
			return err
		}
	}
	if b.phases["memory"] || b.phases["scale"] {
		if err := b.redisPhases(); err != nil {
			return err
		}
	}
	b.rep.took = time.Since(started)
	text := b.rep.String(b)
	fmt.Print("\n" + text)
	file := filepath.Join(b.out, "report.txt")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Printf("\n(also in %s)\n", file)
	return nil
}

func (b *bench) needsMain() bool {
	for _, p := range []string{"table", "grpc", "profile", "activation", "replicas"} {
		if b.phases[p] {
			return true
		}
	}
	return false
}

// step prints what the bench is doing now.
func (b *bench) step(format string, args ...any) {
	fmt.Printf("%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// notef records something the report must mention.
func (b *bench) notef(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.rep.notes = append(b.rep.notes, msg)
	b.step("NOTE: %s", msg)
}
