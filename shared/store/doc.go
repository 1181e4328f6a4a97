// Package store keeps tide's state in Redis: the notification streams with their
// deduplication keys, and the analytics aggregates with the Kafka offsets they cover.
// Every write that must happen once is a single Lua script, so it is atomic: Redis
// applies all of it or none of it, and a replayed record changes nothing.
//
// Keys live under a prefix (REDIS_KEY_PREFIX, default "tide:") so several
// deployments, or tests, can share one Redis.
package store
