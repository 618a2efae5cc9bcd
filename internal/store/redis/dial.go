package redis

import (
	"fmt"
	"net/url"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Dial connects to the Redis deployment a URL names, in go-redis's URL
// syntax:
//
//	redis://[user:password@]host:port[/db]           one server (rediss:// for TLS)
//	redis://host:port?master_name=NAME[&addr=...]     Sentinel: the hosts are sentinels
//	redis://host:port?cluster=true[&addr=host:port]   Cluster: the hosts are seed nodes
//
// A URL with several addr parameters and no master_name is a Cluster too.
// Timeouts the URL leaves unset are short (see failFast): Elevate answers
// "no" quickly when Redis is away rather than make every gateway wait.
func Dial(raw string) (goredis.UniversalClient, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	q := u.Query()
	switch {
	case q.Has("master_name"):
		opts, err := goredis.ParseFailoverURL(raw)
		if err != nil {
			return nil, fmt.Errorf("redis sentinel url: %w", err)
		}
		failFast(&opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout, &opts.MaxRetries, &opts.DialerRetries)
		opts.ContextTimeoutEnabled = true
		return goredis.NewFailoverClient(opts), nil
	case q.Has("addr") || q.Get("cluster") == "true":
		q.Del("cluster")
		u.RawQuery = q.Encode()
		opts, err := goredis.ParseClusterURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("redis cluster url: %w", err)
		}
		failFast(&opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout, &opts.MaxRetries, &opts.DialerRetries)
		opts.ContextTimeoutEnabled = true
		return goredis.NewClusterClient(opts), nil
	}
	opts, err := goredis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	failFast(&opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout, &opts.MaxRetries, &opts.DialerRetries)
	opts.ContextTimeoutEnabled = true
	return goredis.NewClient(opts), nil
}

// failFast sets the timeouts and retries the URL did not: a second to
// connect, half a second to answer, one retry of a command, one dial per
// attempt. go-redis's own defaults (5 s, 3 s, 3 retries, 5 dials) would hold
// a gateway's request for seconds during an outage before the answer, a
// denial, is given anyway.
func failFast(dial, read, write *time.Duration, retries, dials *int) {
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{dial, time.Second}, {read, 500 * time.Millisecond}, {write, 500 * time.Millisecond}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if *retries == 0 {
		*retries = 1
	}
	if *dials == 0 {
		*dials = 1
	}
}
