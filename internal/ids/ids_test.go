package ids_test

import (
	"regexp"
	"testing"

	"github.com/elevatepdp/elevate/internal/ids"
)

func TestForms(t *testing.T) {
	tests := map[string]struct {
		make func() string
		form *regexp.Regexp
	}{
		"activation": {func() string { return ids.New("act_") }, regexp.MustCompile(`^act_[0-9a-f]{24}$`)},
		"event":      {func() string { return ids.New("evt_") }, regexp.MustCompile(`^evt_[0-9a-f]{24}$`)},
		"request":    {ids.Request, regexp.MustCompile(`^[0-9a-f]{32}$`)},
		"uuid":       {ids.UUID, regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a, b := tc.make(), tc.make()
			if !tc.form.MatchString(a) {
				t.Errorf("%q is not of the form %s", a, tc.form)
			}
			if a == b {
				t.Errorf("two ids are the same: %q", a)
			}
		})
	}
}
