package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ghzVersion is the ghz the bench installs. `@latest` resolves to v0.93.0
// through the module proxy; v0.120.0 is the newest release and builds with
// Go 1.26.
const ghzVersion = "v0.120.0"

// ensureGhz finds ghz on PATH or in GOPATH/bin, else installs it with
// `go install`.
func ensureGhz() (string, error) {
	if p, err := exec.LookPath("ghz"); err == nil {
		return p, nil
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOPATH: %w", err)
	}
	bin := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "ghz")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	fmt.Printf("installing ghz: go install github.com/bojand/ghz/cmd/ghz@%s\n", ghzVersion)
	cmd := exec.Command("go", "install", "github.com/bojand/ghz/cmd/ghz@"+ghzVersion)
	cmd.Dir = os.TempDir() // outside this module: ghz's dependencies are its own
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install ghz: %v\n%s", err, out)
	}
	return bin, nil
}

// checkRequest is the CheckRequest ghz sends: a GET of a user in one of
// the fixture's units, for a random fixture subject named in the header the
// replica trusts (decisions.subject_header), so every call reads that
// subject's elevations.
const checkRequest = `{"attributes":{"request":{"http":{"method":"GET","host":"api.bench.example",` +
	`"path":"/administrativeUnits/unit-{{randomInt 0 10}}/users/{{randomInt 0 1000}}",` +
	`"headers":{"x-elevate-subject":"user{{randomInt 0 10000}}@bench.example"}}}}}`

// ghzReport is the part of ghz's JSON report the bench reads.
type ghzReport struct {
	Count               int64   `json:"count"`
	RPS                 float64 `json:"rps"`
	Total               int64   `json:"total"`
	LatencyDistribution []struct {
		Percentage int   `json:"percentage"`
		Latency    int64 `json:"latency"`
	} `json:"latencyDistribution"`
	StatusCodeDistribution map[string]int64 `json:"statusCodeDistribution"`
	ErrorDistribution      map[string]int64 `json:"errorDistribution"`
}

// ghz drives ext_authz Check on addr with conc concurrent calls over
// connections connections for d.
func (b *bench) ghz(addr string, conc, connections int, d time.Duration) (result, error) {
	args := []string{
		"--insecure", "--call", "envoy.service.auth.v3.Authorization.Check",
		"-d", checkRequest, "-c", strconv.Itoa(conc), "--connections", strconv.Itoa(connections),
		"-z", d.String(), "-O", "json", addr,
	}
	cmd := exec.Command(b.ghzBin, args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	// ghz exits 1 when any call failed; the report says which.
	_ = cmd.Run()
	var rep ghzReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		return result{}, fmt.Errorf("ghz: %v\n%s%s", err, out.String(), stderr.String())
	}
	res := result{Requests: rep.Count, RPS: rep.RPS, Duration: float64(rep.Total) / 1e3}
	for _, p := range rep.LatencyDistribution {
		switch p.Percentage {
		case 50:
			res.P50 = float64(p.Latency) / 1e3
		case 90:
			res.P90 = float64(p.Latency) / 1e3
		case 99:
			res.P99 = float64(p.Latency) / 1e3
		}
	}
	res.Succeeded = rep.StatusCodeDistribution["OK"]
	// ghz closes its connections when the time is up, failing the calls
	// then in flight; those are no answer of the server's.
	failed := rep.Count - res.Succeeded
	for msg, n := range rep.ErrorDistribution {
		if strings.Contains(msg, "use of closed network connection") || strings.Contains(msg, "grpc: the client connection is closing") {
			failed -= n
			res.Requests -= n
		}
	}
	if failed > 0 {
		b.notef("ghz %s (%d concurrent): %d calls failed: %v", addr, conc, failed, rep.ErrorDistribution)
	}
	return res, nil
}
