package httperr_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/elevatepdp/elevate/internal/httperr"
)

func TestAbortBody(t *testing.T) {
	gin.SetMode(gin.TestMode)
	tests := map[string]struct {
		body httperr.Body
		want string
	}{
		"no details is an empty list, not null": {
			body: httperr.New("not_found", "no such thing"),
			want: `{"code":"not_found","message":"no such thing","errors":[]}`,
		},
		"details in order": {
			body: httperr.New("invalid_value", "bad", "a", "b"),
			want: `{"code":"invalid_value","message":"bad","errors":["a","b"]}`,
		},
		"a literal without errors still answers a list": {
			body: httperr.Body{Code: "forbidden", Message: "no"},
			want: `{"code":"forbidden","message":"no","errors":[]}`,
		},
		"a decision names its id": {
			body: httperr.Body{Code: "forbidden", Message: "no", Errors: []string{"denied"}, DecisionID: "d1"},
			want: `{"code":"forbidden","message":"no","errors":["denied"],"decision_id":"d1"}`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(w)
			httperr.Abort(c, http.StatusTeapot, tc.body)
			if w.Code != http.StatusTeapot {
				t.Errorf("status %d, want %d", w.Code, http.StatusTeapot)
			}
			if got := w.Body.String(); got != tc.want {
				t.Errorf("body %s, want %s", got, tc.want)
			}
			if !c.IsAborted() {
				t.Error("the handler chain was not stopped")
			}
		})
	}
}
