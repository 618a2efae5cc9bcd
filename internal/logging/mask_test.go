package logging

import "testing"

func TestMaskHeader(t *testing.T) {
	tests := map[string]struct {
		name, value, want string
	}{
		"a bearer token keeps its scheme":       {"Authorization", "Bearer elv_secret", "Bearer <masked>"},
		"any case":                              {"AUTHORIZATION", "Basic c2VjcmV0", "Basic <masked>"},
		"a proxy's credential keeps its scheme": {"proxy-authorization", "Basic c2VjcmV0", "Basic <masked>"},
		"an Authorization without a scheme":     {"authorization", "elv_secret", "<masked>"},
		"a cookie has no scheme":                {"Cookie", "session=a b", "<masked>"},
		"a set-cookie":                          {"set-cookie", "session=x", "<masked>"},
		"the decision client token":             {"X-Elevate-Client-Token", "elv_gateway secret", "<masked>"},
		"another header is shown":               {"Accept", "text/html", "text/html"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := MaskHeader(tc.name, tc.value); got != tc.want {
				t.Errorf("MaskHeader(%q, %q) = %q, want %q", tc.name, tc.value, got, tc.want)
			}
		})
	}
}
