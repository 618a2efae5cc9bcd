package target

import (
	"errors"
	"net/url"
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	tests := map[string]struct {
		raw      string
		path     string
		segments []string
		query    url.Values
	}{
		"root":                 {raw: "/", path: "/", segments: []string{""}, query: url.Values{}},
		"empty":                {raw: "", path: "", segments: []string{""}, query: url.Values{}},
		"segments and query":   {raw: "/api/v1?id=1&id=2&lang=en", path: "/api/v1", segments: []string{"api", "v1"}, query: url.Values{"id": {"1", "2"}, "lang": {"en"}}},
		"double slash":         {raw: "//admin/x", path: "//admin/x", segments: []string{"admin", "x"}, query: url.Values{}},
		"escaped space":        {raw: "/a%20b", path: "/a b", segments: []string{"a b"}, query: url.Values{}},
		"literal percent":      {raw: "/100%25", path: "/100%", segments: []string{"100%"}, query: url.Values{}},
		"empty segment":        {raw: "/a//b", path: "/a//b", segments: []string{"a", "", "b"}, query: url.Values{}},
		"dots inside segments": {raw: "/a..b/.x", path: "/a..b/.x", segments: []string{"a..b", ".x"}, query: url.Values{}},
		"plus in query":        {raw: "/?q=a+b", path: "/", segments: []string{""}, query: url.Values{"q": {"a b"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Parse(tc.raw)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.raw, err)
			}
			if got.Path != tc.path || !reflect.DeepEqual(got.Segments, tc.segments) || !reflect.DeepEqual(got.Query, tc.query) {
				t.Errorf("Parse(%q) = %+v, want path %q segments %q query %v", tc.raw, got, tc.path, tc.segments, tc.query)
			}
		})
	}
}

// TestParseRefusesAmbiguousTargets: each of these would let a policy and the
// upstream read different requests.
func TestParseRefusesAmbiguousTargets(t *testing.T) {
	for name, raw := range map[string]string{
		"semicolon separator":  "/x?debug=1;a=2",
		"bad query escape":     "/x?debug=%zz",
		"bad path escape":      "/x%zz",
		"escaped slash":        "/files/a%2Fb",
		"escaped slash lower":  "/files/a%2fb",
		"escaped backslash":    "/files/a%5Cb",
		"backslash":            `/files\admin`,
		"double encoded dots":  "/a/%252e%252e/admin",
		"double encoded slash": "/a%252Fb",
		"NUL":                  "/roles/admin%00x",
		"CRLF":                 "/roles/a%0d%0aSet-Cookie:x",
		"dot dot":              "/a/../admin",
		"escaped dot dot":      "/a/%2e%2e/admin",
		"dot":                  "/a/./b",
		"trailing dot dot":     "/a/..",
		"NUL in query value":   "/x?role=admin%00",
		"CRLF in query name":   "/x?a%0d%0ab=1",
		"DEL in path":          "/a%7f",
	} {
		t.Run(name, func(t *testing.T) {
			if got, err := Parse(raw); !errors.Is(err, ErrAmbiguous) {
				t.Errorf("Parse(%q) = %+v, %v; want ErrAmbiguous", raw, got, err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"/", "/a/b?c=d", "/x?debug=1;a=2", "/a%2Fb", "/a/%252e%252e", "//x/../y", "/%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := Parse(raw)
		if err != nil {
			return
		}
		for _, s := range got.Segments {
			if s == "." || s == ".." || hasControl(s) || hasEscape(s) {
				t.Fatalf("Parse(%q) accepted segment %q", raw, s)
			}
		}
	})
}
