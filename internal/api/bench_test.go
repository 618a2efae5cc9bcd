package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/elevatepdp/elevate/internal/api"
	"github.com/elevatepdp/elevate/internal/decision"
	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/server"
	"github.com/elevatepdp/elevate/test/bench/fixture"
)

// A whole HTTP decision through the server's gin handler (request id,
// access log and recovery middleware, routing, authentication, binding,
// the store read, policy evaluation, the decision log, the JSON answer),
// served into an httptest recorder: POST /v1/authorize as a decision
// client (a static token) and POST /v1/data/pim/authz/allow, over the
// standard fixture (10 000 principals, 0-3 elevations each, five roles) in
// a real redis-server and in the in-process store.
//
//	go test -run '^$' -bench . -benchmem ./internal/api

const gatewayToken = "bench-gateway-token"

var endpoints = []struct {
	name, path string
	body       func(fixture.Request) []byte
	allowed    func(body []byte) (bool, error)
}{
	{"authorize", "/v1/authorize", fixture.Request.AuthorizeBody, func(b []byte) (bool, error) {
		var d struct{ Allow bool }
		err := json.Unmarshal(b, &d)
		return d.Allow, err
	}},
	{"data", "/v1/data/pim/authz/allow", fixture.Request.DataBody, func(b []byte) (bool, error) {
		var d struct{ Result bool }
		err := json.Unmarshal(b, &d)
		return d.Result, err
	}},
}

func BenchmarkHTTP(b *testing.B) {
	for _, backend := range []string{fixture.Redis, fixture.Memory} {
		b.Run(backend, func(b *testing.B) {
			h := handler(b, backend)
			for _, ep := range endpoints {
				b.Run(ep.name, func(b *testing.B) {
					bodies := make([][]byte, len(h.reqs))
					for k, r := range h.reqs {
						bodies[k] = ep.body(r)
					}
					for k := range 200 {
						w := h.serve(ep.path, bodies[k])
						got, err := ep.allowed(w.Body.Bytes())
						if w.Code != http.StatusOK || err != nil {
							b.Fatalf("%s %s: %d %s", ep.path, bodies[k], w.Code, w.Body)
						}
						if want := fixture.Allowed(h.reqs[k], fixture.SubjectIndex(k, fixture.Principals), h.now); got != want {
							b.Fatalf("%s %s: %s, the fixture says allow=%v", ep.path, bodies[k], w.Body, want)
						}
					}
					lat := make([]time.Duration, 0, 1<<16)
					b.ReportAllocs()
					b.ResetTimer()
					for n := 0; b.Loop(); n++ {
						start := time.Now()
						w := h.serve(ep.path, bodies[n%len(bodies)])
						lat = append(lat, time.Since(start))
						if w.Code != http.StatusOK {
							b.Fatalf("%d %s", w.Code, w.Body)
						}
					}
					b.StopTimer()
					fixture.ReportLatencies(b, lat)
				})
			}
		})
	}
}

type benchHandler struct {
	http.Handler
	reqs []fixture.Request
	now  time.Time
}

// handler is the HTTP handler `elevate serve` builds, over the fixture in
// backend, with one decision client.
func handler(b *testing.B, backend string) benchHandler {
	b.Helper()
	stack := fixture.NewStack(b, backend)
	auth, err := identity.New(context.Background(), identity.Config{StaticTokens: []identity.StaticToken{
		{Name: "gateway", Kind: identity.Client, SHA256: identity.HashToken(gatewayToken)},
	}})
	if err != nil {
		b.Fatal(err)
	}
	eval := decision.NewEvaluator(stack.Engine, stack.Workflow, stack.Log)
	eval.Observe(stack.Metrics)
	srv := server.New(server.Options{
		Engine: stack.Engine, Logger: stack.Log,
		APIs: []server.Registrar{
			stack.Metrics,
			api.New(stack.Workflow, auth, stack.Log, 1<<20),
			decision.NewDataAPI(eval, nil, "subject", 1<<20),
		},
	})
	return benchHandler{
		Handler: srv.Handler(),
		reqs:    fixture.Requests(fixture.Principals, fixture.Principals, stack.Now),
		now:     stack.Now,
	}
}

func (h benchHandler) serve(path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+gatewayToken)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// BenchmarkHTTPParallel serves the same requests from 4 goroutines per core
// over Redis, as a replica under gateway load does: ns/op is the inverse of
// the handler's throughput, without a network or load generator. With the
// cache warm nothing here waits on I/O; at 16 goroutines per core the Go
// scheduler left some evaluations waiting past the 1 s evaluation deadline
// (and so denied), which says more about oversubscribing CPU-bound
// goroutines than about the handler.
func BenchmarkHTTPParallel(b *testing.B) {
	h := handler(b, fixture.Redis)
	for _, ep := range endpoints {
		b.Run(ep.name, func(b *testing.B) {
			bodies := make([][]byte, len(h.reqs))
			for k, r := range h.reqs {
				bodies[k] = ep.body(r)
			}
			b.SetParallelism(4)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				n := 0
				for pb.Next() {
					if w := h.serve(ep.path, bodies[n%len(bodies)]); w.Code != http.StatusOK {
						b.Errorf("%d %s", w.Code, w.Body)
						return
					}
					n++
				}
			})
		})
	}
}
