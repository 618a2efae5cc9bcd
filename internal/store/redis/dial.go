package redis

import (
	"fmt"
	"net/url"

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
		return goredis.NewFailoverClient(opts), nil
	case q.Has("addr") || q.Get("cluster") == "true":
		q.Del("cluster")
		u.RawQuery = q.Encode()
		opts, err := goredis.ParseClusterURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("redis cluster url: %w", err)
		}
		return goredis.NewClusterClient(opts), nil
	}
	opts, err := goredis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	return goredis.NewClient(opts), nil
}
