package audit

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/elevatepdp/elevate/test/harness"
)

// sinkSuite runs the same checks against every sink.
func sinkSuite(t *testing.T, sink Sink) {
	ctx := context.Background()
	var out bytes.Buffer
	logger := logrus.New()
	logger.SetOutput(&out)
	logger.SetFormatter(&logrus.JSONFormatter{})
	l := New(sink, logger)

	base := time.Now().UTC().Truncate(time.Millisecond)
	const n = 1203 // more than one page of the Redis reader
	for i := range n {
		e := Event{Type: Activated, Actor: "sophia@x", Principal: fmt.Sprintf("p%d@x", i%3), Role: "user-administrator", Scope: "/",
			Time: base.Add(time.Duration(i) * time.Millisecond)}
		if i%100 == 0 {
			e.Type = Expired
		}
		if err := l.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	tests := map[string]struct {
		f    Filter
		want int
	}{
		"all":          {Filter{}, n},
		"by principal": {Filter{Principal: "p1@x"}, n / 3},
		"by type":      {Filter{Type: Expired}, 13},
		"by role":      {Filter{Role: "nobody"}, 0},
		"since":        {Filter{Since: base.Add(1000 * time.Millisecond)}, n - 1000},
		"until":        {Filter{Until: base.Add(10 * time.Millisecond)}, 10},
		"window":       {Filter{Since: base.Add(5 * time.Millisecond), Until: base.Add(15 * time.Millisecond)}, 10},
		"limit":        {Filter{Limit: 7}, 7},
	}
	for name, tc := range tests {
		got, err := l.Events(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != tc.want {
			t.Errorf("%s: %d events, want %d", name, len(got), tc.want)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Time.Before(got[i-1].Time) {
				t.Fatalf("%s: events out of order", name)
			}
		}
	}
	first, _ := l.Events(ctx, Filter{Limit: 1})
	if !strings.HasPrefix(first[0].ID, "evt_") || first[0].Actor != "sophia@x" {
		t.Fatalf("event %+v", first[0])
	}
	if !strings.Contains(out.String(), `"type":"activation.activated"`) || !strings.Contains(out.String(), `"event_id":"evt_`) {
		t.Fatalf("events not logged as JSON: %.200s", out.String())
	}
}

func TestMemorySink(t *testing.T) {
	sinkSuite(t, NewMemorySink(10000))
}

func TestMemorySinkKeepsNewest(t *testing.T) {
	s := NewMemorySink(2)
	for i := range 3 {
		_, _ = s.Append(context.Background(), Event{ID: fmt.Sprint(i)})
	}
	got, _ := s.Events(context.Background(), Filter{})
	if len(got) != 2 || got[0].ID != "1" {
		t.Fatalf("kept %v", got)
	}
}

func TestRedisSink(t *testing.T) {
	srv := harness.Redis(t)
	sinkSuite(t, NewRedisSink(srv.Client(t), 0))
}
