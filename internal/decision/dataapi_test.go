package decision_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/open-policy-agent/opa/v1/server"

	"github.com/elevatepdp/elevate/internal/decision"
	"github.com/elevatepdp/elevate/internal/decision/reason"
)

// The Data API sets input.now itself, replacing any the caller sent: a
// policy reading input.now cannot be moved in time by the caller.
func TestDataAPIReplacesCallerNow(t *testing.T) {
	eval, _, _ := newEvaluator(t, "package t\n\nnow := input.now\n")
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	decision.NewDataAPI(eval, nil, "subject", 1<<20).Register(r)
	for name, input := range map[string]string{
		"a past now":         `{"now": 0}`,
		"a future now":       `{"now": 9223372036854775807}`,
		"a string":           `{"now": "2000-01-01T00:00:00Z"}`,
		"with a subject":     `{"now": 0, "subject": "` + subject + `"}`,
		"none sent, set":     `{}`,
		"an unknown subject": `{"now": 1, "subject": "nobody@example"}`,
		"null":               `{"now": null}`,
	} {
		t.Run(name, func(t *testing.T) {
			before := time.Now()
			w := httptest.NewRecorder()
			r.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/data/t/now", strings.NewReader(`{"input": `+input+`}`)))
			after := time.Now()
			var body struct {
				Result *json.Number `json:"result"`
			}
			dec := json.NewDecoder(strings.NewReader(w.Body.String()))
			dec.UseNumber()
			if w.Code != http.StatusOK || dec.Decode(&body) != nil || body.Result == nil {
				t.Fatalf("answer %d %s", w.Code, w.Body.String())
			}
			ns, err := body.Result.Int64()
			if err != nil || ns < before.UnixNano() || ns > after.UnixNano() {
				t.Fatalf("input.now = %s, want the server's time in [%d, %d]", body.Result, before.UnixNano(), after.UnixNano())
			}
		})
	}
}

// recorder is told of decisions as /metrics and OPA's decision-log plugin
// are.
type recorder struct {
	mu        sync.Mutex
	outcomes  []string
	failed    []string
	decisions []*server.Info
}

func (r *recorder) Decision(endpoint, outcome string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcomes = append(r.outcomes, endpoint+":"+outcome)
}

func (r *recorder) FailedClosed(_, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, reason)
}

func (*recorder) Evaluation(string, time.Duration) {}

func (r *recorder) Log(_ context.Context, info *server.Info) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.decisions = append(r.decisions, info)
	return nil
}

// Every Data API request with OPA's query parameters is still one decision
// of the Evaluator: counted, in the decision log under the id it answers
// with; a strict built-in error is a failed decision. Strict and lenient
// evaluations of one path are prepared apart, so neither changes the
// other's answer.
func TestDataAPIParametersRecordEveryDecision(t *testing.T) {
	eval, _, _ := newEvaluator(t, "package t\n\nallow if input.user == \"admin\"\n\nbad := x if x := to_number(\"abc\")\n")
	rec := &recorder{}
	eval.Observe(rec)
	eval.LogDecisions(rec)
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	decision.NewDataAPI(eval, nil, "subject", 1<<20).Register(r)
	admin := `{"input": {"user": "admin"}}`
	tests := []struct {
		name, method, path, body string
		status                   int
		outcome, failed          string
		has                      []string // keys of the answer
	}{
		{"pretty", "POST", "t/allow?pretty", admin, 200, "allow", "", []string{"decision_id", "result"}},
		{"metrics", "POST", "t/allow?metrics", admin, 200, "allow", "", []string{"decision_id", "metrics", "result"}},
		{"instrument", "POST", "t/allow?instrument", admin, 200, "allow", "", []string{"decision_id", "metrics", "result"}},
		{"provenance", "POST", "t/allow?provenance", admin, 200, "allow", "", []string{"decision_id", "provenance", "result"}},
		{"explain full undefined", "POST", "t/allow?explain=full", `{"input": {}}`, 200, "deny", "", []string{"decision_id", "explanation"}},
		{"strict", "POST", "t/bad?strict-builtin-errors", admin, 500, "failed", reason.PolicyError, []string{"code", "errors", "message"}},
		{"lenient after strict", "POST", "t/bad", admin, 200, "deny", "", []string{"decision_id"}},
		{"strict again", "GET", "t/bad?strict-builtin-errors", "", 500, "failed", reason.PolicyError, []string{"code", "errors", "message"}},
		{"get input", "GET", `t/allow?input=%7B%22user%22:%22admin%22%7D`, "", 200, "allow", "", []string{"decision_id", "result"}},
	}
	for i, tc := range tests {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(tc.method, "/v1/data/"+tc.path, body))
		var answer map[string]any
		if w.Code != tc.status || json.Unmarshal(w.Body.Bytes(), &answer) != nil {
			t.Fatalf("%s: answer %d %s", tc.name, w.Code, w.Body.String())
		}
		keys := make([]string, 0, len(answer))
		for k := range answer {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if !slices.Equal(keys, tc.has) {
			t.Errorf("%s: answer has %v, want %v: %s", tc.name, keys, tc.has, w.Body.String())
		}
		if len(rec.outcomes) != i+1 || rec.outcomes[i] != "data:"+tc.outcome {
			t.Fatalf("%s: observed %v", tc.name, rec.outcomes)
		}
		if len(rec.decisions) != i+1 {
			t.Fatalf("%s: %d decisions logged after %d requests", tc.name, len(rec.decisions), i+1)
		}
		logged := rec.decisions[i]
		if id, ok := answer["decision_id"]; ok && id != logged.DecisionID {
			t.Errorf("%s: answered decision %v, logged %s", tc.name, id, logged.DecisionID)
		}
		if (logged.Error != nil) != (tc.failed != "") {
			t.Errorf("%s: logged error %v", tc.name, logged.Error)
		}
	}
	if want := []string{reason.PolicyError, reason.PolicyError}; !slices.Equal(rec.failed, want) {
		t.Errorf("failed closed %v, want %v", rec.failed, want)
	}
}
