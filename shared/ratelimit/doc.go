// Package ratelimit limits how many events each client may send, with one budget
// shared by every ingest replica.
//
// The algorithm is GCRA (the generic cell rate algorithm, a leaky bucket kept as one
// "theoretical arrival time" per key): a key may send Burst events at once and Rate
// events per second after that, so over any window of T seconds it gets at most
// Burst + Rate×T events. The shared state lives in Redis (github.com/go-redis/redis_rate,
// one Lua script per decision, using Redis's clock so replicas' clocks do not matter).
//
// When Redis does not answer within the configured timeout, the Limiter decides
// without it for a while (Fallback): with a local, per-replica GCRA (each replica
// allows its share of the limit), by accepting everything (open) or by refusing
// everything (closed). It says so in a gauge, a counter and one log line per change.
//
// Headers tells what to send to the client: Retry-After and the RateLimit-Limit,
// RateLimit-Remaining, RateLimit-Reset and RateLimit-Policy fields of the IETF draft
// "RateLimit Fields for HTTP", draft-ietf-httpapi-ratelimit-headers-06 (the last
// revision with those four field names; later revisions merged them into
// RateLimit and RateLimit-Policy).
package ratelimit
