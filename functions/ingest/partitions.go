package ingest

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"function/shared/growth"
	"function/shared/kafka"
)

// coordination is ingest's part in growing partitions (shared/growth): with
// PARTITION_COORDINATION on and REDIS_ADDR set, this replica keeps a lease with the
// partition manager and holds its publishers (both, when TRANSACTIONAL_TYPES is set)
// while the manager grows the topic, so no key's events are reordered. Without Redis
// ingest runs as before, and a manager never grows the topic under it unless told to
// (PARTITION_MIN_REPLICAS=0). The zero value is off.
type coordination struct {
	rdb     *redis.Client
	replica *growth.Replica
}

func (f *Function) startCoordination(ctx context.Context, cfg Config) error {
	if !cfg.Coordination.Enabled || cfg.Redis.Addr == "" {
		f.log.Info("partition coordination off: the partition manager cannot hold this replica's publishes",
			"PARTITION_COORDINATION", cfg.Coordination.Enabled, "redis", cfg.Redis.Addr != "")
		return nil
	}
	hb := cfg.Coordination.Heartbeat()
	// Every call bounded by one heartbeat and never retried: the next heartbeat is the
	// retry, and a Redis that does not answer must fence the replica in time.
	opts := &redis.Options{
		Addr: cfg.Redis.Addr, Username: cfg.Redis.Username, Password: cfg.Redis.Password, DB: cfg.Redis.DB,
		DialTimeout: hb, ReadTimeout: hb, WriteTimeout: hb, PoolTimeout: hb, MaxRetries: -1,
	}
	if cfg.Redis.TLS.Enabled {
		tc, err := kafka.TLSConfig(cfg.Redis.TLS)
		if err != nil {
			return fmt.Errorf("REDIS_TLS_*: %w", err)
		}
		opts.TLSConfig = tc
	}
	holders := []growth.Holder{f.pub}
	if f.txn.pub != nil {
		holders = append(holders, f.txn.pub)
	}
	f.coord.rdb = redis.NewClient(opts)
	f.coord.replica = growth.JoinReplica(ctx, f.coord.rdb, cfg.Coordination, cfg.Topic, growth.Combine(holders...),
		growth.ReplicaOptions{HoldTimeout: cfg.AckTimeout(), Logger: f.log})
	f.log.Info("partition coordination on", "replica", f.coord.replica.ID(), "held", f.coord.replica.Held())
	return nil
}

// ErrCoordinationCutOff: the replica cannot renew its partition-coordination lease in
// Redis, so it holds its publishers until Redis answers.
var ErrCoordinationCutOff = errors.New("publishes are held: this replica cannot renew its partition-coordination lease in Redis (REDIS_ADDR)")

// cutOff reports ErrCoordinationCutOff while the replica holds because Redis did not
// answer, and nil otherwise (also with coordination off).
func (c *coordination) cutOff() error {
	if c.replica != nil && c.replica.Fenced() {
		return ErrCoordinationCutOff
	}
	return nil
}

// close leaves the protocol; during a hold it first waits for the release, so the
// records waiting in the held publishers go out under the new partition count.
func (c *coordination) close(ctx context.Context) error {
	if c.replica == nil {
		return nil
	}
	return errors.Join(c.replica.Close(ctx), c.rdb.Close())
}
