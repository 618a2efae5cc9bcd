package logging

import (
	"io"
	"testing"

	"github.com/sirupsen/logrus"
)

type otherLogger struct{ logrus.FieldLogger }

func TestEnabled(t *testing.T) {
	log, err := New(io.Discard, "warn", "json")
	if err != nil {
		t.Fatal(err)
	}
	entry := log.WithField("component", "x")
	for _, tc := range []struct {
		name  string
		log   logrus.FieldLogger
		level logrus.Level
		want  bool
	}{
		{"logger below its level", log, logrus.InfoLevel, false},
		{"logger at its level", log, logrus.WarnLevel, true},
		{"entry below its logger's level", entry, logrus.InfoLevel, false},
		{"entry at its logger's level", entry, logrus.ErrorLevel, true},
		{"a logger that cannot say", otherLogger{log}, logrus.DebugLevel, true},
	} {
		if got := Enabled(tc.log, tc.level); got != tc.want {
			t.Errorf("%s: Enabled = %v, want %v", tc.name, got, tc.want)
		}
	}
}
