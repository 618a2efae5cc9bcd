package audit

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
)

// A cell a spreadsheet would run as a formula is written as quoted text
// with a single quote before it (OWASP's advice on CSV injection); any
// other cell is written as encoding/csv writes it, and every cell reads
// back with encoding/csv.
func TestCSVCellNeutralisesFormulas(t *testing.T) {
	tests := map[string]struct{ cell, want string }{
		"equals":             {"=1+1", `"'=1+1"`},
		"plus":               {"+1", `"'+1"`},
		"minus":              {"-1", `"'-1"`},
		"at":                 {"@SUM(A1)", `"'@SUM(A1)"`},
		"tab":                {"\t=1", "\"'\t=1\""},
		"carriage return":    {"\r=1", "\"'\r=1\""},
		"after spaces":       {"  =1", `"'  =1"`},
		"full-width equals":  {"\uff1d1+1", "\"'\uff1d1+1\""},
		"quotes inside":      {`=HYPERLINK("x")`, `"'=HYPERLINK(""x"")"`},
		"plain":              {"activation.requested", "activation.requested"},
		"empty":              {"", ""},
		"equals inside":      {"a=1", "a=1"},
		"comma":              {"a,b", `"a,b"`},
		"leading space":      {" a", `" a"`},
		"line break":         {"a\nb", "\"a\nb\""},
		"quote":              {`say "hi"`, `"say ""hi"""`},
		"a time":             {"2026-03-01T09:31:00.000000005Z", "2026-03-01T09:31:00.000000005Z"},
		"a scope":            {"/administrativeUnits/ny", "/administrativeUnits/ny"},
		"backslash dot only": {`\.`, `"\."`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := csvCell(tc.cell); got != tc.want {
				t.Fatalf("csvCell(%q) = %s, want %s", tc.cell, got, tc.want)
			}
			if formulaLike(tc.cell) {
				return
			}
			// What encoding/csv would write, byte for byte.
			var b bytes.Buffer
			w := csv.NewWriter(&b)
			_ = w.Write([]string{tc.cell})
			w.Flush()
			if want := strings.TrimSuffix(b.String(), "\n"); tc.cell != "" && csvCell(tc.cell) != want {
				t.Fatalf("csvCell(%q) = %s, encoding/csv writes %s", tc.cell, csvCell(tc.cell), want)
			}
		})
	}
}
