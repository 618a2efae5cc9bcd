package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	_ "net/http/pprof" // the profiled replica's endpoint
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/elevatepdp/elevate/internal/cli"
	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/test/bench/fixture"
)

// subjectHeader is the header ext_authz requests name their subject in.
const subjectHeader = "x-elevate-subject"

// elevate is one Elevate replica the bench runs.
type elevate struct {
	*proc
	url      string // http://host:port
	grpcAddr string
}

// elevateConfig is the YAML of every replica: the fixture's policies, the
// shared Redis, a JWT issuer for users (MFA from amr) and a static token for
// the gateway, the subject header for ext_authz, serve's default log.
func (b *bench) elevateConfig(addr, grpcAddr, redisURL string) (string, error) {
	paths := make([]string, len(fixture.PolicyPaths))
	for i, p := range fixture.PolicyPaths {
		paths[i] = filepath.Join(b.root, p)
	}
	cfg := map[string]any{
		"server": map[string]any{"addr": addr, "grpc_addr": grpcAddr},
		"policy": map[string]any{"paths": paths, "watch": false},
		"store":  map[string]any{"redis_url": redisURL},
		"identity": map[string]any{
			"jwt": map[string]any{
				"issuer": issuer, "audiences": []string{audience},
				"jwks_file": b.jwt.jwksFile, "algorithms": []string{"ES256"},
			},
			"static_tokens": []map[string]any{{"name": "gateway", "kind": "client", "sha256": identity.HashToken(b.gatewayToken)}},
		},
		// Opened: the load generators present no decision client token.
		"decisions": map[string]any{"subject_header": subjectHeader, "require_token": false},
		"log":       map[string]any{"level": b.logLevel, "format": "json"},
	}
	// JSON is YAML.
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", err
	}
	file := filepath.Join(b.tmp, "elevate-"+strings.ReplaceAll(addr, ":", "-")+".yaml")
	return file, os.WriteFile(file, raw, 0o600)
}

// startElevate starts the built binary as a replica on redisURL.
func (b *bench) startElevate(name, redisURL string) (*elevate, error) {
	return b.startElevateWith(name, redisURL, func(config string) (*proc, error) {
		return b.procs.start(name, b.elevateBin, "serve", "--config", config)
	})
}

// startElevateProfiled runs the same code (internal/cli) inside this
// program, with net/http/pprof on pprofAddr: the binary has no profiling
// endpoint, and the profile must be of the code the binary runs.
func (b *bench) startElevateProfiled(name, redisURL, pprofAddr string) (*elevate, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return b.startElevateWith(name, redisURL, func(config string) (*proc, error) {
		return b.procs.start(name, self, "child-elevate-pprof", pprofAddr, "serve", "--config", config)
	})
}

func (b *bench) startElevateWith(name, redisURL string, start func(config string) (*proc, error)) (*elevate, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	grpcAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	config, err := b.elevateConfig(addr, grpcAddr, redisURL)
	if err != nil {
		return nil, err
	}
	p, err := start(config)
	if err != nil {
		return nil, err
	}
	e := &elevate{proc: p, url: "http://" + addr, grpcAddr: grpcAddr}
	if err := waitHTTP(p, e.url+"/health/ready", 60*time.Second); err != nil {
		b.procs.stop(p)
		return nil, err
	}
	return e, nil
}

// childElevatePprof is the body of startElevateProfiled's process.
func childElevatePprof(pprofAddr string, args []string) int {
	go func() {
		// net/http/pprof registers on the default mux.
		if err := http.ListenAndServe(pprofAddr, nil); err != nil {
			fmt.Fprintln(os.Stderr, "pprof:", err)
		}
	}()
	return cli.Execute(context.Background(), args, os.Stdout, os.Stderr)
}

// opaPolicy is the equivalent policy for upstream OPA: the same Rego and
// role data, with the subject's elevations read from data.elevations
// (pushed from the same fixture) and the time taken from the clock, which
// is what Elevate adds to the input before it evaluates.
const opaPolicy = `package bench

import data.pim.authz

default _elevations := []

_elevations := data.elevations[input.subject]

_input := object.union(input, {"elevations": _elevations, "now": time.now_ns()})

allow := a if {
	a := authz.allow with input as _input
}

decision := d if {
	d := authz.decision with input as _input
}
`

// startOPA starts `opa run --server --optimize-store-for-read-speed` with
// the built-in policies, the demo and bench roles and the wrapper above,
// and pushes the fixture's elevations to data.elevations.
func (b *bench) startOPA(elevations map[string][]any) (string, *proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return "", nil, err
	}
	wrapper := filepath.Join(b.tmp, "bench.rego")
	if err := os.WriteFile(wrapper, []byte(opaPolicy), 0o644); err != nil {
		return "", nil, err
	}
	args := []string{"run", "--server", "--optimize-store-for-read-speed", "--addr", addr,
		"--log-level", b.logLevel, "--ignore", "*_test.rego", "--skip-version-check"}
	for _, p := range fixture.PolicyPaths {
		args = append(args, filepath.Join(b.root, p))
	}
	args = append(args, wrapper)
	p, err := b.procs.start("opa", b.opaBin, args...)
	if err != nil {
		return "", nil, err
	}
	url := "http://" + addr
	if err := waitHTTP(p, url+"/health", 60*time.Second); err != nil {
		b.procs.stop(p)
		return "", nil, err
	}
	body, err := json.Marshal(elevations)
	if err != nil {
		return "", nil, err
	}
	req, _ := http.NewRequest(http.MethodPut, url+"/v1/data/elevations", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("push elevations to opa: %w", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return "", nil, fmt.Errorf("push elevations to opa: %d %s", resp.StatusCode, msg)
	}
	return url, p, nil
}

// startBare starts the ceiling: a bare net/http handler answering a
// constant JSON document, in its own process (this program, re-executed).
func (b *bench) startBare() (string, *proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return "", nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	p, err := b.procs.start("bare", self, "child-bare", addr)
	if err != nil {
		return "", nil, err
	}
	url := "http://" + addr
	if err := waitHTTP(p, url+"/", 10*time.Second); err != nil {
		b.procs.stop(p)
		return "", nil, err
	}
	return url, p, nil
}

// childBare is the bare handler's process: it reads the body, as any
// decision endpoint must, and answers {"result":true}.
func childBare(addr string) int {
	answer := []byte(`{"result":true}` + "\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	})
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
