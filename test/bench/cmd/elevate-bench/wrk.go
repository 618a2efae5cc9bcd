package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// result is one load run: throughput and latency percentiles.
type result struct {
	Requests int64   `json:"requests"`
	Duration float64 `json:"duration_us"`
	P50      float64 `json:"p50_us"`
	P90      float64 `json:"p90_us"`
	P99      float64 `json:"p99_us"`
	Non2xx   int64   `json:"status_errors"`
	Errors   int64   `json:"socket_errors"`
	// Statuses counts the answers by status, when the script counts them.
	Statuses  map[string]int64 `json:"statuses"`
	RPS       float64          `json:"-"`
	Succeeded int64            `json:"-"`
	// Foreign and Steal are the shares of the machine's CPU that other
	// programs and the hypervisor took during the run.
	Foreign, Steal float64 `json:"-"`
}

func (r result) p50() time.Duration { return time.Duration(r.P50 * float64(time.Microsecond)) }
func (r result) p99() time.Duration { return time.Duration(r.P99 * float64(time.Microsecond)) }

// postScript posts the lines of a file (one JSON body each) in turn, each
// thread starting elsewhere in the file, with an optional bearer token; the
// requests are formatted once, in init, so the load generator spends its
// time sending. done prints the figures as one JSON line.
const postScript = `
local reqs = {}
local idx = 0
local threads = 0

function setup(thread)
  thread:set("offset", threads * 4999)
  threads = threads + 1
end

function init(args)
  local headers = {["Content-Type"] = "application/json"}
  if args[2] and args[2] ~= "" then headers["Authorization"] = "Bearer " .. args[2] end
  for line in io.lines(args[1]) do
    reqs[#reqs + 1] = wrk.format("POST", wrk.path, headers, line)
  end
  idx = (offset or 0) % #reqs
end

function request()
  idx = idx % #reqs + 1
  return reqs[idx]
end
` + doneScript

// activateScript posts activations of bench-operator, one principal after
// the other (a bearer JWT per line of args[1]), each at a scope no other
// request of any thread or run uses (args[2] names the run), so every one
// can succeed.
const activateScript = `
local tokens = {}
local n = 0
local threads = 0
statuses = {}

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
  all[#all + 1] = thread
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  run = args[2]
end

function request()
  local p = n % #tokens + 1
  local round = math.floor(n / #tokens)
  n = n + 1
  local body = string.format('{"role":"bench-operator","scope":"/administrativeUnits/%s-t%d-r%d","duration":"1h"}', run, tid, round)
  return wrk.format("POST", wrk.path, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. tokens[p]}, body)
end
` + doneScript

// doneScript prints the figures as one JSON line, with the answers by
// status when the threads counted them (in a global table "statuses").
const doneScript = `
all = {}

function done(summary, latency, requests)
  local e = summary.errors
  local counts = {}
  for _, t in ipairs(all) do
    local s = t:get("statuses")
    if s then
      for k, v in pairs(s) do counts[k] = (counts[k] or 0) + v end
    end
  end
  local parts = {}
  for k, v in pairs(counts) do parts[#parts + 1] = string.format('"%d":%d', k, v) end
  io.write(string.format('BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"status_errors":%d,"socket_errors":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout, table.concat(parts, ",")))
end
`

// wrkRun is one wrk invocation.
type wrkRun struct {
	url      string
	script   string // file
	args     []string
	conns    int
	duration time.Duration
}

func (b *bench) wrk(r wrkRun) (result, error) {
	args := []string{
		"-t", strconv.Itoa(min(b.threads, r.conns)), "-c", strconv.Itoa(r.conns),
		"-d", fmt.Sprintf("%ds", int(r.duration.Seconds())), "--timeout", "5s",
		"-s", r.script, r.url, "--",
	}
	args = append(args, r.args...)
	cmd := exec.Command(b.wrkBin, args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("wrk %s: %v\n%s%s", r.url, err, out.String(), stderr.String())
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "BENCH "); ok {
			var res result
			if err := json.Unmarshal([]byte(line), &res); err != nil {
				return result{}, fmt.Errorf("wrk %s: %w: %s", r.url, err, line)
			}
			res.RPS = float64(res.Requests) / (res.Duration / 1e6)
			res.Succeeded = res.Requests - res.Non2xx
			return res, nil
		}
	}
	return result{}, fmt.Errorf("wrk %s printed no figures:\n%s%s", r.url, out.String(), stderr.String())
}

// writeScripts writes the Lua scripts and the request bodies to tmp.
func (b *bench) writeScripts(bodies map[string][]string) error {
	for name, s := range map[string]string{"post.lua": postScript, "activate.lua": activateScript} {
		if err := os.WriteFile(filepath.Join(b.tmp, name), []byte(s), 0o644); err != nil {
			return err
		}
	}
	for name, lines := range bodies {
		if err := os.WriteFile(filepath.Join(b.tmp, name), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ensureWrk finds wrk, installing Debian's package when it is missing and
// we are root.
func ensureWrk() (string, error) {
	if p, err := exec.LookPath("wrk"); err == nil {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("wrk is not installed: apt-get install wrk (or your system's package), then run again")
	}
	fmt.Println("installing wrk: apt-get install -y wrk")
	install := func() error {
		cmd := exec.Command("apt-get", "install", "-y", "wrk")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get install wrk: %v\n%s", err, out)
		}
		return nil
	}
	if err := install(); err != nil {
		if out, uerr := exec.Command("apt-get", "update").CombinedOutput(); uerr != nil {
			return "", fmt.Errorf("apt-get update: %v\n%s", uerr, out)
		}
		if err := install(); err != nil {
			return "", err
		}
	}
	return exec.LookPath("wrk")
}
