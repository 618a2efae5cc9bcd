package decision_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/elevatepdp/elevate/internal/decision"
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
