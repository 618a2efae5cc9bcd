package workflow

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTimeFieldRange(t *testing.T) {
	tests := map[string]struct {
		t  time.Time
		ok bool
	}{
		"epoch":          {time.Unix(0, 0), true},
		"before epoch":   {time.Unix(-1, 0), false},
		"now":            {time.Now(), true},
		"last day":       {time.Date(2261, 12, 31, 23, 59, 59, 0, time.UTC), true},
		"2262":           {time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC), false},
		"2611":           {time.Date(2611, 1, 1, 0, 0, 0, 0, time.UTC), false},
		"9999":           {time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), false},
		"2262 elsewhere": {time.Date(2261, 12, 31, 23, 0, 0, 0, time.FixedZone("", -2*3600)), false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := TimeField("start", tc.t)
			var bad *InvalidError
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.ok && (!errors.As(err, &bad) || !strings.HasPrefix(bad.Errors[0], "start: ")):
				t.Fatalf("want an InvalidError naming start, got %v", err)
			}
		})
	}
}

func TestFreeText(t *testing.T) {
	tests := map[string]struct {
		in, want string
		inline   bool
		refused  string // in the error, when refused
	}{
		"plain":                {in: "Onboarding", want: "Onboarding"},
		"trimmed":              {in: " \t Onboarding\r\n", want: "Onboarding"},
		"zero-width around":    {in: "\u200b\ufeffOnboarding\u2060\u200d", want: "Onboarding"},
		"only zero-width":      {in: "\u200b\u200c\u200d\u2060\ufeff", want: ""},
		"only control":         {in: "\x00\x01\x7f\u0085", want: ""},
		"only white space":     {in: "\u00a0\u3000\u2028 \t", want: ""},
		"lines inside":         {in: "line one\nline two\tend", want: "line one\nline two\tend"},
		"escape inside":        {in: "red\x1b[31m", refused: "control character"},
		"joiner inside text":   {in: "a\u200db", want: "a\u200db"},
		"ticket, trimmed":      {in: " INC0042\n", want: "INC0042", inline: true},
		"ticket, line inside":  {in: "INC1\nINC2", inline: true, refused: "control character"},
		"ticket, bidi inside":  {in: "INC\u202e1", inline: true, refused: "control character"},
		"ticket, zero-width":   {in: "INC\u200b1", inline: true, refused: "control character"},
		"at the limit":         {in: strings.Repeat("é", 30), want: strings.Repeat("é", 30)},
		"over the limit":       {in: strings.Repeat("é", 31), refused: "31 characters long, more than the 30"},
		"over, before trimmed": {in: strings.Repeat(" ", 31), refused: "more than the 30"},
		"invalid UTF-8":        {in: "a\xffb", refused: "UTF-8"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := freeText("field", tc.in, 30, tc.inline)
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused) || !strings.Contains(err.Error(), "field") {
					t.Fatalf("got %q, %v; want an error naming field and saying %q", got, err, tc.refused)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestLimitsDefaultWhenZero(t *testing.T) {
	got := Limits{TicketNumber: 7}.orDefault()
	want := DefaultLimits()
	want.TicketNumber = 7
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}
