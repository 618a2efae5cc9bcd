package redis_test

import (
	"context"
	"testing"
	"time"

	storeredis "github.com/elevatepdp/elevate/internal/store/redis"
	"github.com/elevatepdp/elevate/test/bench/fixture"
	"github.com/elevatepdp/elevate/test/harness"
)

// The elevation read path behind every decision, against a real
// redis-server on loopback holding the standard fixture (10 000 principals,
// 0-3 live elevations each, five roles), loaded with pipelines and checked
// through the store. Subjects follow the fixture's request mix, so a
// quarter of the reads find nothing and the rest one to three elevations.
//
//	go test -run '^$' -bench . -benchmem ./internal/store/redis

func benchStore(b *testing.B) (*storeredis.Store, time.Time) {
	b.Helper()
	srv := harness.Redis(b)
	c, err := storeredis.Dial(srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	ctx := context.Background()
	now := time.Now()
	var all []fixture.Elevation
	for i := range fixture.Principals {
		all = append(all, fixture.Elevations(i, now)...)
	}
	if err := fixture.LoadRedis(ctx, c, all); err != nil {
		b.Fatal(err)
	}
	st := storeredis.New(c)
	for i := range 50 {
		if err := fixture.Verify(ctx, st, fixture.Principal(i), fixture.Elevations(i, now), now); err != nil {
			b.Fatal(err)
		}
	}
	return st, now
}

// BenchmarkHoldings is the read behind every decision that misses the
// holdings cache (this store has none): the subject's assignments and live
// elevations in one round trip, one at a time, then from 16 readers per
// core as a replica under gateway load reads them (ns/op is then the
// inverse of the throughput).
func BenchmarkHoldings(b *testing.B) {
	st, now := benchStore(b)
	ctx := context.Background()
	subjects := subjects()
	b.Run("sequential", func(b *testing.B) {
		lat := make([]time.Duration, 0, 1<<16)
		b.ReportAllocs()
		b.ResetTimer()
		for n := 0; b.Loop(); n++ {
			start := time.Now()
			if _, err := st.Holdings(ctx, subjects[n%len(subjects)], now); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		fixture.ReportLatencies(b, lat)
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(16)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			n := 0
			for pb.Next() {
				if _, err := st.Holdings(ctx, subjects[n%len(subjects)], now); err != nil {
					b.Error(err)
					return
				}
				n++
			}
		})
	})
}

func subjects() []string {
	out := make([]string, fixture.Principals)
	for k := range out {
		out[k] = fixture.Principal(fixture.SubjectIndex(k, fixture.Principals))
	}
	return out
}
