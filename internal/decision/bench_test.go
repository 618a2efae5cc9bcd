package decision_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/elevatepdp/elevate/internal/decision"
	"github.com/elevatepdp/elevate/internal/policy"
	"github.com/elevatepdp/elevate/test/bench/fixture"
)

// A gateway decision as the Evaluator makes it: read the subject's live
// elevations from the store, convert the input, evaluate, log the decision
// (JSON, info level, to io.Discard). Over the standard fixture (10 000
// principals, 0-3 elevations each, five roles) in the in-process store and
// in a real redis-server, cycling through the fixture's request mix.
//
//	go test -run '^$' -bench . -benchmem ./internal/decision

var backends = []string{fixture.Memory, fixture.Redis}

func BenchmarkEvaluate(b *testing.B) {
	for _, backend := range backends {
		b.Run(backend, func(b *testing.B) {
			stack := fixture.NewStack(b, backend)
			eval := decision.NewEvaluator(stack.Engine, stack.Workflow, stack.Log)
			eval.Observe(stack.Metrics)
			reqs := fixture.Requests(fixture.Principals, fixture.Principals, stack.Now)
			ctx := context.Background()
			for _, path := range []string{"pim/authz/allow", "pim/authz/decision"} {
				q := policy.PathQuery(path)
				checkEvaluate(b, eval, q, reqs, stack.Now)
				b.Run(path, func(b *testing.B) {
					lat := make([]time.Duration, 0, 1<<16)
					b.ReportAllocs()
					b.ResetTimer()
					for n := 0; b.Loop(); n++ {
						r := reqs[n%len(reqs)]
						start := time.Now()
						res := eval.Evaluate(ctx, decision.Request{Query: q, Input: r.Input(), Subject: r.Subject})
						lat = append(lat, time.Since(start))
						if res.Failed != "" {
							b.Fatal(res.Err)
						}
					}
					b.StopTimer()
					fixture.ReportLatencies(b, lat)
				})
			}
		})
	}
}

// checkEvaluate compares a sample of decisions with the fixture's answers.
func checkEvaluate(b *testing.B, eval *decision.Evaluator, q policy.Query, reqs []fixture.Request, now time.Time) {
	b.Helper()
	for k, r := range reqs[:500] {
		res := eval.Evaluate(context.Background(), decision.Request{Query: q, Input: r.Input(), Subject: r.Subject})
		if res.Failed != "" || !res.Defined {
			b.Fatalf("%+v: no decision: %s %v", r, res.Failed, res.Err)
		}
		got := res.Value
		if m, ok := got.(map[string]any); ok {
			got = m["allow"]
		}
		if want := fixture.Allowed(r, fixture.SubjectIndex(k, fixture.Principals), now); got != want {
			b.Fatalf("%s %+v: %v, the fixture says %v", q, r, res.Value, want)
		}
	}
}

// BenchmarkDataAPI is POST /v1/data/pim/authz/allow through the Data API's
// gin handler alone (no middleware; internal/api's BenchmarkHTTP has the
// whole server), answered into an httptest recorder.
func BenchmarkDataAPI(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	for _, backend := range backends {
		b.Run(backend, func(b *testing.B) {
			stack := fixture.NewStack(b, backend)
			r := gin.New()
			eval := decision.NewEvaluator(stack.Engine, stack.Workflow, stack.Log)
			eval.Observe(stack.Metrics)
			decision.NewDataAPI(eval, nil, "subject", 1<<20).Register(r)
			reqs := fixture.Requests(fixture.Principals, fixture.Principals, stack.Now)
			bodies := make([][]byte, len(reqs))
			for k, req := range reqs {
				bodies[k] = req.DataBody()
			}
			for k := range 200 {
				w := serve(r, bodies[k])
				var out struct{ Result bool }
				if err := json.Unmarshal(w.Body.Bytes(), &out); w.Code != http.StatusOK || err != nil ||
					out.Result != fixture.Allowed(reqs[k], fixture.SubjectIndex(k, fixture.Principals), stack.Now) {
					b.Fatalf("%s: %d %s", bodies[k], w.Code, w.Body)
				}
			}
			lat := make([]time.Duration, 0, 1<<16)
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; b.Loop(); n++ {
				start := time.Now()
				w := serve(r, bodies[n%len(bodies)])
				lat = append(lat, time.Since(start))
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
			b.StopTimer()
			fixture.ReportLatencies(b, lat)
		})
	}
}

func serve(h http.Handler, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/v1/data/pim/authz/allow", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}
