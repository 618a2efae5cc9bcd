package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/elevatepdp/elevate/test/bench/fixture"
)

// Names of the load comparison's targets.
const (
	nameAuthorize   = "Elevate  POST /v1/authorize"
	nameElevateData = "Elevate  POST /v1/data/pim/authz/allow"
	nameOPADecision = "OPA      POST /v1/data/bench/decision"
	nameOPAAllow    = "OPA      POST /v1/data/bench/allow"
	nameBare        = "bare net/http handler (constant answer)"
)

// pairs are what each Elevate endpoint is compared with: the OPA query
// evaluating the same rule.
var pairs = map[string]string{nameAuthorize: nameOPADecision, nameElevateData: nameOPAAllow}

type row struct {
	conns int
	name  string
	res   result
}

type memory struct {
	n             int
	before, after int64
	took          time.Duration
	keys          float64
	jsonSize      float64
	// bytes per elevation by key: the principal's activations hash and
	// live set, its elevation key and lock, the global id and due indexes.
	act, live, el, lock, indexes float64
}

func (m *memory) perElevation() float64 { return float64(m.after-m.before) / float64(m.n) }

type scale struct {
	small, large       int
	seqSmall, seqLarge latency
	seqSpread          latency
	wrkSmall, wrkLarge result
	loadTook           time.Duration
	memory             int64
}

type report struct {
	machine      []string
	redisVersion string
	allowedShare float64
	// policy are the policy evaluation benchmarks from -gobench, by name
	// (benchAuthz and the floor); nil when not given.
	policy               map[string]evalFigure
	table, grpc          []row
	profileFile          string
	profileTop           string
	activation           *result
	actToAllow           []time.Duration
	deactToDeny          []time.Duration
	actPolls, deactPolls int
	endLat               []time.Duration
	endLate              int
	mem                  *memory
	scale                *scale
	notes                []string
	took                 time.Duration
}

func (r *report) find(conns int, name string) (result, bool) {
	for _, x := range r.table {
		if x.conns == conns && x.name == name {
			return x.res, true
		}
	}
	return result{}, false
}

func (r *report) String(b *bench) string {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format+"\n", args...) }
	p("== Elevate performance run, %s (took %s)", time.Now().UTC().Format("2006-01-02 15:04 MST"), r.took.Round(time.Second))
	for _, m := range r.machine {
		p("   %s", m)
	}
	p("   Redis %s", r.redisVersion)
	p("")
	if len(r.table) > 0 {
		p("== Load comparison: wrk, %d threads, %s per run after %s of warm-up; POST bodies rotating over the", b.threads, b.duration, b.warmup)
		p("   fixture's %d subjects (0-3 elevations each, 5 roles, %.0f%% of the requests allowed); one run at a time", fixture.Principals, r.allowedShare*100)
		p("")
		p("   %-5s  %-40s  %9s  %9s  %9s  %-22s  %-13s  %s", "conns", "target", "req/s", "p50", "p99", "req/s vs OPA (p99 vs)", "req/s vs bare", "other CPU")
		for _, x := range r.table {
			bare, _ := r.find(x.conns, nameBare)
			vsOPA, vsBare := "", ""
			if other, ok := pairs[x.name]; ok {
				if o, ok := r.find(x.conns, other); ok {
					vsOPA = fmt.Sprintf("%.2fx (%.2fx)", x.res.RPS/o.RPS, float64(x.res.p99())/float64(o.p99()))
				}
			}
			if x.name != nameBare && bare.RPS > 0 {
				vsBare = fmt.Sprintf("%.0f%%", 100*x.res.RPS/bare.RPS)
			}
			p("   %-5d  %-40s  %9.0f  %9s  %9s  %-22s  %-13s  %s", x.conns, x.name, x.res.RPS, fmtDur(x.res.p50()), fmtDur(x.res.p99()), vsOPA, vsBare, pctString(x.res.Foreign))
		}
		p("   Elevate /v1/authorize is compared with OPA's data.bench.decision and /v1/data/pim/authz/allow with")
		p("   data.bench.allow: the same rule of policies/pim/authz over the same elevations. other CPU: the share of the")
		p("   machine's CPU that programs other than the bench's took during the run (measured again above %.0f%%).", maxForeign*100)
		p("")
	}
	if len(r.grpc) > 0 {
		p("== Envoy ext_authz gRPC Check (ghz %s, %s per run, random fixture subject per call)", ghzVersion, b.duration)
		for _, x := range r.grpc {
			p("   %-40s  %9.0f req/s  p50 %-9s p99 %-9s other CPU %s", x.name, x.res.RPS, fmtDur(x.res.p50()), fmtDur(x.res.p99()), pctString(x.res.Foreign))
		}
		p("")
	}
	p("== Beyond throughput")
	if r.activation != nil {
		a := r.activation
		p("   activation throughput (JWT amr MFA, policy, Redis write, audit; %d connections): %.0f/s, p50 %s, p99 %s;",
			activationConns, float64(a.Succeeded)/(a.Duration/1e6), fmtDur(a.p50()), fmtDur(a.p99()))
		p("     answers by status %v, other CPU %s", a.Statuses, pctString(a.Foreign))
	}
	if len(r.actToAllow) > 0 {
		p("   activation on A -> first allow on replica B (%d trials): p50 %s, p99 %s, max %s; %d trials needed more than one decision",
			len(r.actToAllow), fmtDur(pct(r.actToAllow, 50)), fmtDur(pct(r.actToAllow, 99)), fmtDur(pct(r.actToAllow, 100)), r.actPolls)
		p("   deactivation on A -> first deny on replica B (%d trials): p50 %s, p99 %s, max %s; %d trials needed more than one decision",
			len(r.deactToDeny), fmtDur(pct(r.deactToDeny, 50)), fmtDur(pct(r.deactToDeny, 99)), fmtDur(pct(r.deactToDeny, 100)), r.deactPolls)
		p("     (from the end of the answer on A to the end of B's answer: one decision's round trip included)")
	}
	if len(r.endLat) > 0 {
		p("   end of an elevation -> first deny on replica B (%d elevations of 2 s): p50 %s, p99 %s, max %s; %d allows to requests sent after the end",
			len(r.endLat), fmtDur(pct(r.endLat, 50)), fmtDur(pct(r.endLat, 99)), fmtDur(pct(r.endLat, 100)), r.endLate)
	}
	if m := r.mem; m != nil {
		p("   Redis memory per active elevation: %.0f bytes (used_memory %d -> %d over %d activations through the store, %.1f keys",
			m.perElevation(), m.before, m.after, m.n, m.keys)
		p("     and %.0f bytes of activation JSON each; written in %s); per elevation by key (MEMORY USAGE): activations hash %.0f,",
			m.jsonSize, m.took.Round(time.Millisecond), m.act)
		p("     live set %.0f, elevation key %.0f, lock %.0f, id and due indexes %.0f", m.live, m.el, m.lock, m.indexes)
	}
	if s := r.scale; s != nil {
		p("   decision latency, one at a time, same subjects, median of %d alternating rounds: %d active elevations p50 %s p99 %s; %d: p50 %s p99 %s (%.2fx)",
			scaleRounds, s.small, fmtDur(s.seqSmall.p50), fmtDur(s.seqSmall.p99), s.large, fmtDur(s.seqLarge.p50), fmtDur(s.seqLarge.p99),
			ratio(s.seqLarge.p50, s.seqSmall.p50))
		p("     subjects spread over all %d: p50 %s p99 %s; at %d connections: %.0f -> %.0f req/s, p50 %s -> %s",
			s.large, fmtDur(s.seqSpread.p50), fmtDur(s.seqSpread.p99), b.conns[0], s.wrkSmall.RPS, s.wrkLarge.RPS, fmtDur(s.wrkSmall.p50()), fmtDur(s.wrkLarge.p50()))
		p("     (%d elevations loaded with pipelines in %s; Redis used_memory %d MiB)", s.large, s.loadTook.Round(time.Second), s.memory>>20)
	}
	p("")
	p("== Targets (issue 6)")
	for _, t := range r.targets(b) {
		p("   %-7s %s", t.verdict, t.text)
	}
	if r.profileTop != "" {
		p("")
		p("== CPU profile of Elevate's /v1/authorize under load (%s; go tool pprof -top)", r.profileFile)
		lines := strings.Split(strings.TrimSpace(r.profileTop), "\n")
		for _, l := range lines[:min(len(lines), 32)] {
			p("   %s", l)
		}
	}
	if len(r.notes) > 0 {
		p("")
		p("== Notes")
		for _, n := range r.notes {
			p("   %s", n)
		}
	}
	return w.String()
}

type verdict struct{ verdict, text string }

func met(ok bool) string {
	if ok {
		return "MET"
	}
	return "MISSED"
}

func (r *report) targets(b *bench) []verdict {
	var out []verdict
	for _, conns := range b.conns {
		bare, haveBare := r.find(conns, nameBare)
		for _, name := range []string{nameAuthorize, nameElevateData} {
			e, ok := r.find(conns, name)
			o, ok2 := r.find(conns, pairs[name])
			if !ok || !ok2 || !haveBare {
				continue
			}
			x, share := e.RPS/o.RPS, e.RPS/bare.RPS
			out = append(out, verdict{met(x >= 2 && e.p99() <= o.p99() && share >= 0.6), fmt.Sprintf(
				"%s at %d conns: %.2fx OPA's req/s (target >= 2.0x), p99 %s vs OPA's %s (target <=), %.0f%% of bare (target >= 60%%)",
				strings.Join(strings.Fields(name), " "), conns, x, fmtDur(e.p99()), fmtDur(o.p99()), share*100)})
		}
	}
	if len(r.table) == 0 {
		out = append(out, verdict{"-", "HTTP throughput vs OPA and bare: " + errNoFigure.Error()})
	}
	if authz, ok := r.policy[benchAuthz]; ok {
		d := time.Duration(authz.p50)
		text := fmt.Sprintf("data.pim.authz.decision evaluation median %s (mean %s) in BenchmarkEval (target < 10µs)",
			fmtDur(d), fmtDur(time.Duration(authz.mean)))
		constant, ok1 := r.policy[benchFloorConstant]
		loop, ok2 := r.policy[benchFloorLoop]
		if ok1 && ok2 {
			text += fmt.Sprintf("; OPA's floor here (BenchmarkEvalFloor): a constant rule %s, the smallest loop over the elevations %s",
				fmtDur(time.Duration(constant.p50)), fmtDur(time.Duration(loop.p50)))
		}
		out = append(out, verdict{met(d < 10*time.Microsecond), text})
	} else {
		out = append(out, verdict{"-", "policy evaluation median: run with -gobench (make bench does)"})
	}
	if len(r.deactToDeny) > 0 {
		d := pct(r.deactToDeny, 99)
		out = append(out, verdict{met(d < 100*time.Millisecond), fmt.Sprintf("revocation visible on another replica: p99 %s (target < 100ms)", fmtDur(d))})
	} else {
		out = append(out, verdict{"-", "revocation on another replica: " + errNoFigure.Error()})
	}
	if len(r.endLat) > 0 {
		d := pct(r.endLat, 100)
		out = append(out, verdict{met(d <= 50*time.Millisecond && r.endLate == 0), fmt.Sprintf(
			"ended elevation denied within %s of its end at worst (p99 %s; %d late allows; target <= 50ms)", fmtDur(d), fmtDur(pct(r.endLat, 99)), r.endLate)})
	} else {
		out = append(out, verdict{"-", "ended elevation denied: " + errNoFigure.Error()})
	}
	if s := r.scale; s != nil {
		x := ratio(s.seqLarge.p50, s.seqSmall.p50)
		out = append(out, verdict{met(x <= 1.2 && s.large >= 1_000_000), fmt.Sprintf(
			"flat scale: p50 with %d active elevations %.2fx that with %d (target <= 1.2x with 1 M)", s.large, x, s.small)})
	} else {
		out = append(out, verdict{"-", "flat scale: " + errNoFigure.Error()})
	}
	if m := r.mem; m != nil {
		out = append(out, verdict{met(m.perElevation() < 300), fmt.Sprintf("Redis memory per active elevation %.0f bytes (target < 300)", m.perElevation())})
	} else {
		out = append(out, verdict{"-", "Redis memory per active elevation: " + errNoFigure.Error()})
	}
	if a := r.activation; a != nil {
		rate := float64(a.Succeeded) / (a.Duration / 1e6)
		out = append(out, verdict{met(rate >= 3000), fmt.Sprintf("activation throughput %.0f/s (target >= 3000/s)", rate)})
	} else {
		out = append(out, verdict{"-", "activation throughput: " + errNoFigure.Error()})
	}
	return out
}

func pct(ds []time.Duration, p float64) time.Duration {
	return fixture.Percentile(slices.Clone(ds), p)
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// fmtDur prints a duration with three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return strconv.FormatFloat(float64(d)/1e3, 'f', digits(float64(d)/1e3), 64) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/1e6, 'f', digits(float64(d)/1e6), 64) + "ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
}

func digits(v float64) int {
	switch {
	case v >= 100:
		return 0
	case v >= 10:
		return 1
	}
	return 2
}

// machine describes where the run happened.
func machine(b *bench) []string {
	model := "unknown CPU"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		info := map[string]string{}
		for _, line := range strings.Split(string(raw), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if k = strings.TrimSpace(k); ok && info[k] == "" {
				info[k] = strings.TrimSpace(v)
			}
		}
		if info["model name"] != "" {
			model = fmt.Sprintf("%s, family %s model %s, %s MHz", info["model name"], info["cpu family"], info["model"], info["cpu MHz"])
		}
		if strings.Contains(" "+info["flags"]+" ", " hypervisor ") {
			model += ", virtual machine"
		}
	}
	mem := ""
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		if m := regexp.MustCompile(`MemTotal:\s+(\d+) kB`).FindSubmatch(raw); m != nil {
			kb, _ := strconv.Atoi(string(m[1]))
			mem = fmt.Sprintf(", %d GiB", (kb+(1<<19))>>20)
		}
	}
	first := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil && len(out) == 0 {
			return "unknown"
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		line, _, _ = strings.Cut(line, " Copyright")
		return line
	}
	return []string{
		fmt.Sprintf("%d cores (%s)%s, %s %s", runtime.NumCPU(), model, mem, runtime.GOOS, first("uname", "-r")),
		fmt.Sprintf("%s; upstream opa %s; %s", runtime.Version(), strings.TrimPrefix(first(b.opaBin, "version"), "Version: "), first(b.wrkBin, "-v")),
		first(b.elevateBin, "version") + " (" + b.elevateBin + ")",
	}
}

// goBenchLine is a Go benchmark's result line that reports p50-ns.
var goBenchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op\s+([\d.]+) p50-ns`)

// Benchmarks of the policy evaluation the report reads from -gobench.
const (
	benchAuthz         = "BenchmarkEval/data.pim.authz.decision"
	benchFloorConstant = "BenchmarkEvalFloor/data.floor.constant"
	benchFloorLoop     = "BenchmarkEvalFloor/data.floor.loop"
)

// evalFigure is a benchmark's median and mean time per evaluation, in ns.
type evalFigure struct{ p50, mean float64 }

// readGoBench reads the benchmarks reporting p50-ns from the output of the
// Go benchmarks, by name without the -GOMAXPROCS suffix; it must hold
// data.pim.authz.decision's.
func readGoBench(file string) (map[string]evalFigure, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	out := map[string]evalFigure{}
	for _, line := range strings.Split(string(raw), "\n") {
		if m := goBenchLine.FindStringSubmatch(line); m != nil {
			mean, _ := strconv.ParseFloat(m[2], 64)
			p50, _ := strconv.ParseFloat(m[3], 64)
			out[m[1]] = evalFigure{p50: p50, mean: mean}
		}
	}
	if _, ok := out[benchAuthz]; !ok {
		return nil, fmt.Errorf("%s has no %s line with p50-ns", file, benchAuthz)
	}
	return out, nil
}

// field is the value of name in an INFO-style "name:value" reply.
func field(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

func slicesMax(xs []int) int { return slices.Max(xs) }
