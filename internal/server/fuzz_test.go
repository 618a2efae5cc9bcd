package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
)

// FuzzRequestID sends arbitrary X-Request-Id headers (one or two values)
// through the server's middleware. Every answer carries one request id,
// bounded and printable: the caller's when it is plain, else a fresh one,
// since the id is copied into log lines and response headers. The error
// body keeps its shape whatever the id.
func FuzzRequestID(f *testing.F) {
	s := newServer(f)
	h := s.Handler()
	fresh := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for _, seed := range [][2]string{
		{"req-1", ""},
		{"0123456789abcdef0123456789abcdef", ""},
		{"a.b_c:d-e", "second"},
		{"", ""},
		{"has space", ""},
		{"new\nline", ""},
		{"x\r\nSet-Cookie: a=b", ""},
		{"\x00", ""},
		{"é", ""},
		{"\u202eevil", ""},
		{string(make([]byte, 129)), ""},
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ""},
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ""},
	} {
		f.Add(seed[0], seed[1], false)
		f.Add(seed[0], seed[1], true)
	}
	f.Fuzz(func(t *testing.T, id, second string, notFound bool) {
		path := "/health"
		if notFound {
			path = "/nope"
		}
		req := httptest.NewRequest(http.MethodGet, path, nil)
		// Set directly, not through Header.Set, so values a client can send
		// only in a malformed request still reach the middleware.
		req.Header[requestIDHeader] = []string{id}
		if second != "" {
			req.Header[requestIDHeader] = append(req.Header[requestIDHeader], second)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)

		got := w.Header().Values(requestIDHeader)
		if len(got) != 1 {
			t.Fatalf("answer has request ids %q, want one", got)
		}
		echo := got[0]
		if !requestIDPattern.MatchString(echo) {
			t.Fatalf("answer's request id %q is not short and printable", echo)
		}
		if requestIDPattern.MatchString(id) {
			if echo != id {
				t.Fatalf("plain request id %q answered as %q", id, echo)
			}
		} else if !fresh.MatchString(echo) {
			t.Fatalf("request id %q replaced by %q, not by a fresh one", id, echo)
		}
		var body map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("body is not JSON: %q", w.Body)
		}
		if notFound {
			if w.Code != http.StatusNotFound {
				t.Fatalf("status %d, want 404", w.Code)
			}
			for _, k := range []string{"code", "message", "errors"} {
				if _, ok := body[k]; !ok {
					t.Fatalf("error body %s has no %q", w.Body, k)
				}
			}
		} else if w.Code != http.StatusOK {
			t.Fatalf("status %d, want 200", w.Code)
		}
	})
}
