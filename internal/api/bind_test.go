package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/elevatepdp/elevate/internal/workflow"
)

// FuzzBindReadsAsEncodingJSON feeds bind any body. It never panics, answers only 400, 413 or
// 422 when it refuses, and what it accepts encoding/json (strict) reads
// the same way: the strict decoder refuses more (duplicates, other
// spellings of a name), never reads an accepted body differently.
func FuzzBindReadsAsEncodingJSON(f *testing.F) {
	for _, seed := range []string{
		`{"role":"test-role","scope":"/a","duration":"1h","justification":"Onboarding three new hires",` +
			`"ticket":{"system":"ServiceNow","number":"INC0042"},"mfa":{"totp":"123456"},"start":"2026-01-02T15:04:05Z"}`,
		`{"role":"a","role":"b"}`, `{"ROLE":"a"}`, `{"ticket":{"number":"1","number":"2"}}`, `{"r\u006fle":"a","role":"b"}`,
		`{"start":"9999-12-31T00:00:00Z"}`, `{"start":"2026-13-01T00:00:00Z"}`, `{"start":null,"ticket":null,"mfa":null}`,
		`{"duration": 30m}`, `{"role":5}`, `[]`, `null`, `{} {}`, ``, "{\"role\":\"\xff\"}", `{"justification":"\u0000"}`,
	} {
		f.Add([]byte(seed))
	}
	gin.SetMode(gin.TestMode)
	a := &API{maxBody: 1 << 12}
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.Request = httptest.NewRequest(http.MethodPost, "/v1/activations", bytes.NewReader(body))
		c.Request.Body = http.MaxBytesReader(w, c.Request.Body, a.maxBody)
		var got workflow.ActivationRequest
		if !a.bind(c, &got) {
			switch w.Code {
			case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
			default:
				t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
			}
			return
		}
		var want workflow.ActivationRequest
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("bind accepted %q, encoding/json refuses it: %v", body, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("bind read %q as %+v, encoding/json as %+v", body, got, want)
		}
	})
}
