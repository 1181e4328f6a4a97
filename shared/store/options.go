package store

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"function/shared/config"
	"function/shared/kafka"
)

// FastOptions are go-redis options for a caller on a request's path (ingest's rate
// limiter): every dial, read and write bounded by timeout and no retries, so a Redis
// that does not answer costs a request at most about timeout, and the caller falls
// back at once. AUTH (REDIS_USERNAME, REDIS_PASSWORD) and TLS (REDIS_TLS_*) are as
// for Connect.
func FastOptions(cfg config.Redis, timeout time.Duration) (*redis.Options, error) {
	opts := &redis.Options{
		Addr:         cfg.Addr,
		Username:     cfg.Username,
		Password:     cfg.Password,
		DB:           cfg.DB,
		DialTimeout:  timeout,
		ReadTimeout:  timeout,
		WriteTimeout: timeout,
		PoolTimeout:  timeout,
		MaxRetries:   -1, // go-redis: -1 disables retries (0 means the default, 3)
		// One dial attempt per command: the caller's fallback is the retry.
		DialerRetries: 1,
		// The caller passes a context with the same deadline; honouring it means a
		// cancelled request stops waiting for Redis too.
		ContextTimeoutEnabled: true,
	}
	if cfg.TLS.Enabled {
		tc, err := kafka.TLSConfig(cfg.TLS)
		if err != nil {
			return nil, fmt.Errorf("REDIS_TLS_*: %w", err)
		}
		opts.TLSConfig = tc
	}
	return opts, nil
}
