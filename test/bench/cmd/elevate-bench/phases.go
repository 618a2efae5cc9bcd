package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/elevatepdp/elevate/internal/store"
	storeredis "github.com/elevatepdp/elevate/internal/store/redis"
	"github.com/elevatepdp/elevate/test/bench/fixture"
)

// Principals that activate bench-operator during the run, each eligible
// for it at "/": throughput (op), replica trials (rep), ends (end).
func activator(kind string, i int) string { return fmt.Sprintf("%s%d@bench.example", kind, i) }

func eligible(kind string, n int, now time.Time) []store.Assignment {
	out := make([]store.Assignment, n)
	for i := range out {
		out[i] = store.Assignment{
			ID: fmt.Sprintf("asg_%s%d", kind, i), Principal: activator(kind, i), Role: fixture.BenchRole, Scope: "/",
			Type: store.Eligible, CreatedBy: "bench", CreatedAt: now,
		}
	}
	return out
}

// mainPhases run on one Redis holding the standard fixture, with replica A
// serving throughout.
func (b *bench) mainPhases() error {
	ctx := context.Background()
	b.step("starting redis-server and loading the fixture (%d principals)", fixture.Principals)
	rs, err := b.procs.redis("redis", b.tmp)
	if err != nil {
		return err
	}
	defer b.procs.stop(rs.proc)
	defer rs.client.Close()
	b.rep.redisVersion = rs.version()

	now := time.Now()
	var all []fixture.Elevation
	opaData := map[string][]any{}
	for i := range fixture.Principals {
		es := fixture.Elevations(i, now)
		all = append(all, es...)
		if len(es) > 0 {
			opaData[fixture.Principal(i)] = fixture.Inputs(es)
		}
	}
	if err := fixture.LoadRedis(ctx, rs.client, all); err != nil {
		return err
	}
	st := storeredis.New(rs.client)
	for i := range 100 {
		if err := fixture.Verify(ctx, st, fixture.Principal(i), fixture.Elevations(i, now), now); err != nil {
			return err
		}
	}
	var asgs []store.Assignment
	for _, k := range []struct {
		kind string
		n    int
	}{{"op", b.activationPrincipals}, {"rep", b.trials}, {"end", b.endTrials}} {
		asgs = append(asgs, eligible(k.kind, k.n, now)...)
	}
	if err := fixture.LoadAssignments(ctx, rs.client, asgs); err != nil {
		return err
	}
	b.step("loaded %d live elevations and %d eligible assignments to activate", len(all), len(asgs))

	reqs := fixture.Requests(fixture.Principals, fixture.Principals, now)
	var authorize, data []string
	allowed := 0
	for k, r := range reqs {
		authorize = append(authorize, string(r.AuthorizeBody()))
		data = append(data, string(r.DataBody()))
		if fixture.Allowed(r, fixture.SubjectIndex(k, fixture.Principals), now) {
			allowed++
		}
	}
	b.rep.allowedShare = float64(allowed) / float64(len(reqs))
	if err := b.writeScripts(map[string][]string{"authorize.jsonl": authorize, "data.jsonl": data}); err != nil {
		return err
	}

	b.step("starting Elevate replica A (%s)", b.elevateBin)
	a, err := b.startElevate("elevate-a", rs.url)
	if err != nil {
		return err
	}
	defer b.procs.stop(a.proc)

	for _, phase := range []struct {
		name string
		run  func() error
	}{
		{"table", func() error { return b.tablePhase(a, opaData, reqs, now) }},
		{"grpc", func() error { return b.grpcPhase(a) }},
		{"profile", func() error { return b.profilePhase(rs.url) }},
		{"activation", func() error { return b.activationPhase(a, st, now) }},
		{"replicas", func() error { return b.replicaPhase(a, rs.url) }},
	} {
		if !b.phases[phase.name] {
			continue
		}
		if err := phase.run(); err != nil {
			return fmt.Errorf("%s: %w", phase.name, err)
		}
		if a.exited() {
			return a.failure()
		}
	}
	return nil
}

// target is one endpoint of the load comparison.
type target struct {
	name, url, bodies, token string
	// answer reads allow from a 200 answer.
	answer func([]byte) (bool, error)
}

func authorizeAnswer(b []byte) (bool, error) {
	var d struct {
		Allow *bool  `json:"allow"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &d); err != nil || d.Allow == nil || d.Error != "" {
		return false, fmt.Errorf("not a decision: %s", b)
	}
	return *d.Allow, nil
}

func dataAllowAnswer(b []byte) (bool, error) {
	var d struct{ Result *bool }
	if err := json.Unmarshal(b, &d); err != nil || d.Result == nil {
		return false, fmt.Errorf("no boolean result: %s", b)
	}
	return *d.Result, nil
}

func dataDecisionAnswer(b []byte) (bool, error) {
	var d struct{ Result *struct{ Allow *bool } }
	if err := json.Unmarshal(b, &d); err != nil || d.Result == nil || d.Result.Allow == nil {
		return false, fmt.Errorf("no decision result: %s", b)
	}
	return *d.Result.Allow, nil
}

func (b *bench) tablePhase(a *elevate, opaData map[string][]any, reqs []fixture.Request, now time.Time) error {
	b.step("starting upstream opa (%s) and pushing the elevations", b.opaBin)
	opaURL, opa, err := b.startOPA(opaData)
	if err != nil {
		return err
	}
	defer b.procs.stop(opa)
	bareURL, bare, err := b.startBare()
	if err != nil {
		return err
	}
	defer b.procs.stop(bare)

	targets := []target{
		{nameAuthorize, a.url + "/v1/authorize", "authorize.jsonl", b.gatewayToken, authorizeAnswer},
		{nameElevateData, a.url + "/v1/data/pim/authz/allow", "data.jsonl", "", dataAllowAnswer},
		{nameOPADecision, opaURL + "/v1/data/bench/decision", "data.jsonl", "", dataDecisionAnswer},
		{nameOPAAllow, opaURL + "/v1/data/bench/allow", "data.jsonl", "", dataAllowAnswer},
		{nameBare, bareURL + "/v1/data/bench/allow", "data.jsonl", "", nil},
	}
	// The same answers from every PDP, or the comparison compares nothing.
	for _, t := range targets {
		if t.answer == nil {
			continue
		}
		if err := b.checkAnswers(t, reqs, now); err != nil {
			return err
		}
	}
	b.step("every PDP gives the fixture's answer on 500 requests (%.0f%% of the mix is allowed)", b.rep.allowedShare*100)
	for _, conns := range b.conns {
		for _, t := range targets {
			run := wrkRun{url: t.url, script: filepath.Join(b.tmp, "post.lua"), conns: conns,
				args: []string{filepath.Join(b.tmp, t.bodies), t.token}}
			run.duration = b.warmup
			if _, err := b.wrk(run); err != nil {
				return err
			}
			what := fmt.Sprintf("%s at %d connections", strings.Join(strings.Fields(t.name), " "), conns)
			res, err := measuredLoad(b, what, func(int) (result, error) {
				run.duration = b.duration
				return b.wrk(run)
			})
			if err != nil {
				return err
			}
			b.checkErrors(what, res)
			b.step("%-44s %3d conns  %8.0f req/s  p50 %-8s p99 %s", t.name, conns, res.RPS, fmtDur(res.p50()), fmtDur(res.p99()))
			b.rep.table = append(b.rep.table, row{conns: conns, name: t.name, res: res})
		}
	}
	return nil
}

func (b *bench) checkAnswers(t target, reqs []fixture.Request, now time.Time) error {
	lines, err := readLines(filepath.Join(b.tmp, t.bodies))
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for k := range 500 {
		status, body, err := post(client, t.url, t.token, []byte(lines[k]))
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		if status != http.StatusOK {
			return fmt.Errorf("%s %s: %d %s", t.name, lines[k], status, body)
		}
		got, err := t.answer(body)
		if err != nil {
			return fmt.Errorf("%s %s: %w", t.name, lines[k], err)
		}
		if want := fixture.Allowed(reqs[k], fixture.SubjectIndex(k, fixture.Principals), now); got != want {
			return fmt.Errorf("%s %s: allow=%v, the fixture says %v: %s", t.name, lines[k], got, want, body)
		}
	}
	return nil
}

func readLines(file string) ([]string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSpace(string(raw)), "\n"), nil
}

func post(c *http.Client, url, token string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

func (b *bench) grpcPhase(a *elevate) error {
	b.step("ext_authz Check over gRPC with ghz")
	if _, err := b.ghz(a.grpcAddr, b.conns[0], 1, b.warmup); err != nil {
		return err
	}
	for _, conc := range b.conns {
		conns := max(1, conc/8)
		res, err := measuredLoad(b, fmt.Sprintf("gRPC Check at %d concurrent calls", conc), func(int) (result, error) {
			return b.ghz(a.grpcAddr, conc, conns, b.duration)
		})
		if err != nil {
			return err
		}
		if res.Succeeded == 0 {
			return fmt.Errorf("no Check call succeeded (%d made)", res.Requests)
		}
		b.step("%-44s %3d conc   %8.0f req/s  p50 %-8s p99 %s", "Elevate gRPC Check", conc, res.RPS, fmtDur(res.p50()), fmtDur(res.p99()))
		b.rep.grpc = append(b.rep.grpc, row{conns: conc, name: fmt.Sprintf("%d concurrent calls over %d connections", conc, conns), res: res})
	}
	return nil
}

// profilePhase profiles /v1/authorize under the largest load of the table
// for ten seconds, in a replica running the binary's code in this program.
func (b *bench) profilePhase(redisURL string) error {
	pprofAddr, err := freeAddr()
	if err != nil {
		return err
	}
	b.step("CPU profile of /v1/authorize under %d connections (10 s)", slicesMax(b.conns))
	p, err := b.startElevateProfiled("elevate-pprof", redisURL, pprofAddr)
	if err != nil {
		return err
	}
	defer b.procs.stop(p.proc)
	run := wrkRun{url: p.url + "/v1/authorize", script: filepath.Join(b.tmp, "post.lua"), conns: slicesMax(b.conns),
		args: []string{filepath.Join(b.tmp, "authorize.jsonl"), b.gatewayToken}, duration: b.warmup}
	if _, err := b.wrk(run); err != nil {
		return err
	}
	const seconds = 10
	run.duration = (seconds + 3) * time.Second
	var wg sync.WaitGroup
	var loadErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, loadErr = b.wrk(run)
	}()
	time.Sleep(time.Second)
	resp, err := (&http.Client{Timeout: time.Minute}).Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, seconds))
	if err != nil {
		wg.Wait()
		return err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	wg.Wait()
	if err != nil {
		return err
	}
	if loadErr != nil {
		return loadErr
	}
	file := filepath.Join(b.out, "authorize.cpu.pprof")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		return err
	}
	b.rep.profileFile = file
	for _, mode := range []string{"-top", "-top -cum"} {
		args := append([]string{"tool", "pprof"}, strings.Fields(mode)...)
		out, err := exec.Command("go", append(args, "-nodecount=30", file)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("go tool pprof: %v\n%s", err, out)
		}
		name := "authorize.cpu.top.txt"
		if strings.Contains(mode, "cum") {
			name = "authorize.cpu.cum.txt"
		} else {
			b.rep.profileTop = string(out)
		}
		if err := os.WriteFile(filepath.Join(b.out, name), out, 0o644); err != nil {
			return err
		}
	}
	return nil
}

const activationConns = 32

// activationPhase activates bench-operator through replica A as fast as
// wrk can ask: JWT verification (MFA from amr), the activation policy, the
// Redis write and the audit event, every one different.
func (b *bench) activationPhase(a *elevate, st *storeredis.Store, now time.Time) error {
	b.step("minting %d JWTs (ES256, amr pwd+mfa)", b.activationPrincipals)
	tokens := make([]string, b.activationPrincipals)
	for i := range tokens {
		var err error
		if tokens[i], err = b.jwt.token(activator("op", i), now); err != nil {
			return err
		}
	}
	file := filepath.Join(b.tmp, "tokens.txt")
	if err := os.WriteFile(file, []byte(strings.Join(tokens, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	status, body, err := post(http.DefaultClient, a.url+"/v1/activations", tokens[0], []byte(`{"role":"bench-operator","scope":"/administrativeUnits/probe","duration":"1h"}`))
	if err != nil || status != http.StatusCreated {
		return fmt.Errorf("a probe activation answered %d %s (%v)", status, body, err)
	}
	b.step("activation throughput through replica A, %d connections", activationConns)
	salt := fmt.Sprintf("%x", time.Now().UnixNano())
	run := wrkRun{url: a.url + "/v1/activations", script: filepath.Join(b.tmp, "activate.lua"), conns: activationConns,
		args: []string{file, "w" + salt}, duration: b.warmup}
	if _, err := b.wrk(run); err != nil {
		return err
	}
	res, err := measuredLoad(b, "activation throughput", func(attempt int) (result, error) {
		run.args[1], run.duration = fmt.Sprintf("m%s-%d", salt, attempt), b.duration
		return b.wrk(run)
	})
	if err != nil {
		return err
	}
	b.rep.activation = &res
	rate := float64(res.Succeeded) / (res.Duration / 1e6)
	b.step("%d activations in %s: %.0f/s, p50 %s, p99 %s, answers by status %v", res.Succeeded, time.Duration(res.Duration)*time.Microsecond,
		rate, fmtDur(res.p50()), fmtDur(res.p99()), res.Statuses)
	if res.Errors > 0 {
		b.notef("activation throughput: %d socket errors", res.Errors)
	}
	h, err := st.Holdings(context.Background(), activator("op", 1), time.Now())
	if err != nil || len(h.Elevations) == 0 {
		return fmt.Errorf("after the run %s holds %d elevations (%v): the activations did not land", activator("op", 1), len(h.Elevations), err)
	}
	return nil
}

// replicaPhase: a second replica B on the same Redis; activations and
// deactivations go to A, decisions are asked of B.
func (b *bench) replicaPhase(a *elevate, redisURL string) error {
	b.step("starting Elevate replica B on the same Redis")
	rb, err := b.startElevate("elevate-b", redisURL)
	if err != nil {
		return err
	}
	defer b.procs.stop(rb.proc)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	now := time.Now()

	b.step("%d trials: activation on A -> first allow on B, deactivation on A -> first deny on B", b.trials)
	for k := range b.trials {
		principal := activator("rep", k)
		tok, err := b.jwt.token(principal, now)
		if err != nil {
			return err
		}
		if allow, err := b.decide(client, rb, principal); err != nil || allow {
			return fmt.Errorf("%s is allowed before activating (%v)", principal, err)
		}
		act, err := activate(client, a, tok, "1h")
		if err != nil {
			return err
		}
		d, polls, err := b.until(client, rb, principal, true)
		if err != nil {
			return err
		}
		b.rep.actToAllow = append(b.rep.actToAllow, d)
		b.rep.actPolls += polls - 1
		status, body, err := post(client, a.url+"/v1/activations/"+act.ID+"/deactivate", tok, []byte(`{"justification":"bench trial"}`))
		if err != nil || status != http.StatusOK {
			return fmt.Errorf("deactivate %s: %d %s (%v)", act.ID, status, body, err)
		}
		d, polls, err = b.until(client, rb, principal, false)
		if err != nil {
			return err
		}
		b.rep.deactToDeny = append(b.rep.deactToDeny, d)
		b.rep.deactPolls += polls - 1
	}
	return b.endPhase(client, a, rb)
}

type activation struct {
	ID        string    `json:"id"`
	Status    string    `json:"status"`
	ExpiresAt time.Time `json:"expires_at"`
}

func activate(c *http.Client, a *elevate, token, duration string) (activation, error) {
	status, body, err := post(c, a.url+"/v1/activations", token, []byte(`{"role":"bench-operator","scope":"/","duration":"`+duration+`"}`))
	if err != nil {
		return activation{}, err
	}
	var act activation
	if status != http.StatusCreated || json.Unmarshal(body, &act) != nil || act.Status != "active" {
		return activation{}, fmt.Errorf("activate: %d %s", status, body)
	}
	return act, nil
}

// decide asks replica r whether principal may read reports at "/", which
// only bench-operator grants.
func (b *bench) decide(c *http.Client, r *elevate, principal string) (bool, error) {
	status, body, err := post(c, r.url+"/v1/authorize", b.gatewayToken,
		[]byte(`{"subject":"`+principal+`","action":"reports.read","scope":"/"}`))
	if err != nil {
		return false, err
	}
	if status != http.StatusOK {
		return false, fmt.Errorf("authorize: %d %s", status, body)
	}
	return authorizeAnswer(body)
}

// until asks r, back to back, until the answer is want, and returns the
// time from the call to the end of that answer and how many answers it took.
func (b *bench) until(c *http.Client, r *elevate, principal string, want bool) (time.Duration, int, error) {
	start := time.Now()
	for polls := 1; ; polls++ {
		got, err := b.decide(c, r, principal)
		if err != nil {
			return 0, polls, err
		}
		if got == want {
			return time.Since(start), polls, nil
		}
		if time.Since(start) > 5*time.Second {
			return 0, polls, fmt.Errorf("replica B still answers allow=%v for %s after 5 s", got, principal)
		}
	}
}

// endPhase activates for two seconds and asks B, back to back from shortly
// before the end, until it denies: the time from expires_at to the end of
// the first denial, and any allow given to a request sent after the end.
func (b *bench) endPhase(client *http.Client, a, rb *elevate) error {
	b.step("%d elevations of 2 s left to run out, 10 at a time", b.endTrials)
	now := time.Now()
	var mu sync.Mutex
	var late atomic.Int64
	for from := 0; from < b.endTrials; from += 10 {
		var wg sync.WaitGroup
		errs := make(chan error, 10)
		for k := from; k < min(from+10, b.endTrials); k++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				principal := activator("end", k)
				tok, err := b.jwt.token(principal, now)
				if err != nil {
					errs <- err
					return
				}
				act, err := activate(client, a, tok, "2s")
				if err != nil {
					errs <- err
					return
				}
				if allow, err := b.decide(client, rb, principal); err != nil || !allow {
					errs <- fmt.Errorf("%s is not allowed on B right after activating (%v)", principal, err)
					return
				}
				time.Sleep(time.Until(act.ExpiresAt.Add(-20 * time.Millisecond)))
				for {
					sent := time.Now()
					allow, err := b.decide(client, rb, principal)
					if err != nil {
						errs <- err
						return
					}
					if allow {
						if sent.After(act.ExpiresAt) {
							late.Add(1)
						}
						if time.Since(act.ExpiresAt) > 5*time.Second {
							errs <- fmt.Errorf("%s is still allowed 5 s after its end", principal)
							return
						}
						continue
					}
					d := time.Since(act.ExpiresAt)
					mu.Lock()
					b.rep.endLat = append(b.rep.endLat, d)
					mu.Unlock()
					return
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			return err
		}
	}
	b.rep.endLate = int(late.Load())
	return nil
}

// redisPhases use a second Redis of their own, emptied between them.
func (b *bench) redisPhases() error {
	rs, err := b.procs.redis("redis-scale", b.tmp)
	if err != nil {
		return err
	}
	defer b.procs.stop(rs.proc)
	defer rs.client.Close()
	if b.rep.redisVersion == "" {
		b.rep.redisVersion = rs.version()
	}
	if b.phases["memory"] {
		if err := b.memoryPhase(rs); err != nil {
			return fmt.Errorf("memory: %w", err)
		}
	}
	if b.phases["scale"] {
		if err := rs.client.FlushAll(context.Background()).Err(); err != nil {
			return err
		}
		if err := b.scalePhase(rs); err != nil {
			return fmt.Errorf("scale: %w", err)
		}
	}
	return nil
}

// memoryPhase: used_memory before and after n activations made through
// the store (CreateActivation, as the workflow makes them), two per
// principal, their eligible assignments loaded before the first reading.
func (b *bench) memoryPhase(rs *redisServer) error {
	ctx := context.Background()
	n := b.memoryActivations
	now := time.Now()
	var es []fixture.Elevation
	var asgs []store.Assignment
	jsonBytes := 0
	for i := 0; len(es) < n; i++ {
		for _, e := range fixture.ElevationsN(i, min(2, n-len(es)), now) {
			es = append(es, e)
			asgs = append(asgs, e.Assignment())
			raw, _ := json.Marshal(e.Activation())
			jsonBytes += len(raw)
		}
	}
	b.step("Redis memory: %d activations through the store (%d principals)", n, len(asgs)/2)
	if err := fixture.LoadAssignments(ctx, rs.client, asgs); err != nil {
		return err
	}
	before, err := fixture.UsedMemory(ctx, rs.client)
	if err != nil {
		return err
	}
	keysBefore := rs.client.DBSize(ctx).Val()
	indexesBefore := rs.usage("elevate:ids") + rs.usage("elevate:due")
	c, err := storeredis.Dial(rs.url)
	if err != nil {
		return err
	}
	defer c.Close()
	st := storeredis.New(c)
	started := time.Now()
	if err := parallel(64, len(es), func(i int) error {
		_, err := st.CreateActivation(ctx, es[i].Activation())
		return err
	}); err != nil {
		return err
	}
	took := time.Since(started)
	after, err := fixture.UsedMemory(ctx, rs.client)
	if err != nil {
		return err
	}
	m := &memory{
		n: n, before: before, after: after, took: took,
		keys:     float64(rs.client.DBSize(ctx).Val()-keysBefore) / float64(n),
		jsonSize: float64(jsonBytes) / float64(n),
		indexes:  float64(rs.usage("elevate:ids")+rs.usage("elevate:due")-indexesBefore) / float64(n),
	}
	// Where it goes, from MEMORY USAGE of every key of the first 500
	// elevations' principals (the global indexes grow by other things too:
	// ids also holds the assignments, measured before).
	sample := es[:min(len(es), 500)]
	seen := map[string]bool{}
	for _, e := range sample {
		el, lock := e.Keys()
		m.el += float64(rs.usage(el))
		m.lock += float64(rs.usage(lock))
		if !seen[e.Principal] {
			seen[e.Principal] = true
			m.act += float64(rs.usage(fixture.Tag(e.Principal) + ":act"))
			m.live += float64(rs.usage(fixture.Tag(e.Principal) + ":live"))
		}
	}
	for _, v := range []*float64{&m.el, &m.lock, &m.act, &m.live} {
		*v /= float64(len(sample))
	}
	b.rep.mem = m
	b.step("%.0f bytes per active elevation (%d -> %d bytes), %.1f keys each", m.perElevation(), before, after, m.keys)
	return nil
}

// parallel runs f(0..n-1) on workers goroutines, stopping at the first
// error.
func parallel(workers, n int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// scaleRounds is how often each of the two replicas of scalePhase is
// measured, in alternation.
const scaleRounds = 3

// scalePhase: decision latency of a replica whose Redis holds a thousand
// active elevations against one whose Redis holds scaleSize, asking both
// about the same subjects. Each Redis is loaded once; the two replicas are
// then measured in alternation (small, large, large, small, ...) and the
// median of each is reported, so that this machine's drift over the
// minutes of the phase does not land on one side.
func (b *bench) scalePhase(rs *redisServer) error {
	ctx := context.Background()
	now := time.Now()
	// load puts the elevations of principals 0, 1, ... into c until it
	// holds target of them.
	load := func(c *goredis.Client, target int) (principals, elevations int, err error) {
		for elevations < target {
			var batch []fixture.Elevation
			for ; elevations < target && len(batch) < 100_000; principals++ {
				es := fixture.Elevations(principals, now)
				batch = append(batch, es...)
				elevations += len(es)
			}
			if err := fixture.LoadRedis(ctx, c, batch); err != nil {
				return 0, 0, err
			}
		}
		return principals, elevations, nil
	}
	rsSmall, err := b.procs.redis("redis-scale-small", b.tmp)
	if err != nil {
		return err
	}
	defer b.procs.stop(rsSmall.proc)
	defer rsSmall.client.Close()
	principals, small, err := load(rsSmall.client, 1000)
	if err != nil {
		return err
	}
	sc := &scale{small: small}
	b.rep.scale = sc
	b.step("flat scale: loading up to %d active elevations with pipelines", b.scaleSize)
	started := time.Now()
	largePrincipals, large, err := load(rs.client, b.scaleSize)
	if err != nil {
		return err
	}
	sc.large, sc.loadTook = large, time.Since(started)
	if sc.memory, err = fixture.UsedMemory(ctx, rs.client); err != nil {
		return err
	}
	b.step("loaded %d elevations (%d principals) in %s; Redis uses %d MiB", large, largePrincipals, sc.loadTook.Round(time.Second), sc.memory>>20)
	st := storeredis.New(rs.client)
	for _, i := range []int{0, largePrincipals / 2, largePrincipals - 1} {
		if err := fixture.Verify(ctx, st, fixture.Principal(i), fixture.Elevations(i, now), now); err != nil {
			return err
		}
	}

	b.step("starting a replica on each Redis: %d elevations (%d principals) and %d", small, principals, large)
	cs, err := b.startElevate("elevate-scale-small", rsSmall.url)
	if err != nil {
		return err
	}
	defer b.procs.stop(cs.proc)
	cl, err := b.startElevate("elevate-scale-large", rs.url)
	if err != nil {
		return err
	}
	defer b.procs.stop(cl.proc)

	reqs := fixture.Requests(principals*3, principals, now)
	var bodies []string
	for _, r := range reqs {
		bodies = append(bodies, string(r.AuthorizeBody()))
	}
	if err := b.writeScripts(map[string][]string{"scale.jsonl": bodies}); err != nil {
		return err
	}
	type figures struct {
		lat latency
		res result
	}
	measure := func(c *elevate) (figures, error) {
		f, other, steal, err := measured(b, "decisions at scale", func(int) (figures, error) {
			lat, err := b.sequential(c, bodies, 5000)
			if err != nil {
				return figures{}, err
			}
			res, err := b.wrk(wrkRun{url: c.url + "/v1/authorize", script: filepath.Join(b.tmp, "post.lua"), conns: b.conns[0],
				args: []string{filepath.Join(b.tmp, "scale.jsonl"), b.gatewayToken}, duration: 5 * time.Second})
			return figures{lat, res}, err
		})
		f.res.Foreign, f.res.Steal = other, steal
		b.checkErrors("decisions at scale", f.res)
		return f, err
	}
	var smalls, larges []figures
	for round := range scaleRounds {
		order := []bool{false, true}
		if round%2 == 1 {
			order = []bool{true, false}
		}
		for _, isLarge := range order {
			c, n, into := cs, small, &smalls
			if isLarge {
				c, n, into = cl, large, &larges
			}
			f, err := measure(c)
			if err != nil {
				return err
			}
			*into = append(*into, f)
			b.step("round %d, %d elevations: p50 %s p99 %s one at a time; %.0f req/s, p50 %s at %d connections", round+1, n,
				fmtDur(f.lat.p50), fmtDur(f.lat.p99), f.res.RPS, fmtDur(f.res.p50()), b.conns[0])
		}
	}
	// The round with the median one-at-a-time p50 stands for each side.
	medianRound := func(fs []figures) figures {
		slices.SortFunc(fs, func(x, y figures) int { return cmp.Compare(x.lat.p50, y.lat.p50) })
		return fs[len(fs)/2]
	}
	ms, ml := medianRound(smalls), medianRound(larges)
	sc.seqSmall, sc.wrkSmall, sc.seqLarge, sc.wrkLarge = ms.lat, ms.res, ml.lat, ml.res

	var spread []string
	for _, r := range fixture.Requests(5000, largePrincipals, now) {
		spread = append(spread, string(r.AuthorizeBody()))
	}
	if sc.seqSpread, err = b.sequential(cl, spread, 5000); err != nil {
		return err
	}
	return nil
}

// latency is the distribution of one-at-a-time decisions.
type latency struct{ p50, p99 time.Duration }

// sequential asks n decisions one after the other over one connection,
// after 300 unmeasured ones.
func (b *bench) sequential(r *elevate, bodies []string, n int) (latency, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	ds := make([]time.Duration, 0, n)
	for k := range n + 300 {
		start := time.Now()
		status, body, err := post(client, r.url+"/v1/authorize", b.gatewayToken, []byte(bodies[k%len(bodies)]))
		d := time.Since(start)
		if err != nil {
			return latency{}, err
		}
		if status != http.StatusOK {
			return latency{}, fmt.Errorf("authorize: %d %s", status, body)
		}
		if _, err := authorizeAnswer(body); err != nil {
			return latency{}, err
		}
		if k >= 300 {
			ds = append(ds, d)
		}
	}
	return latency{p50: fixture.Percentile(ds, 50), p99: fixture.Percentile(ds, 99)}, nil
}

var errNoFigure = errors.New("not measured in this run")

// checkErrors notes failed requests of a measured run: every request of a
// comparison must be answered, or its figures flatter the server.
func (b *bench) checkErrors(what string, res result) {
	if res.Non2xx > 0 || res.Errors > 0 {
		b.notef("%s: %d answers were not 2xx, %d requests failed on the socket", what, res.Non2xx, res.Errors)
	}
}
