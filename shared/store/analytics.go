package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Fact is what analytics counts of one event.
type Fact struct {
	Source  string
	ID      string
	Type    string
	Subject string    // "" when the event has none
	Time    time.Time // bucketed by minute
	// Offset is the record's offset; -1 when the event did not come from Kafka
	// directly (push mode), where only (source, id) deduplicates.
	Offset int64
}

// Analytics keeps the aggregates and, per consumer group and topic ID, the next
// offset of every partition they cover.
type Analytics struct {
	rdb    *redis.Client
	prefix string
	dedup  time.Duration
}

// NewAnalytics returns the store; dedup is how long an event's identity is remembered.
func NewAnalytics(rdb *redis.Client, prefix string, dedup time.Duration) *Analytics {
	return &Analytics{rdb: rdb, prefix: prefix, dedup: dedup}
}

// applyScript folds a batch into the aggregates and records the offset after it, in
// one atomic step. A record below the stored offset of its partition was applied
// before (a replay after a crash or rebalance) and is skipped; an event whose
// (source, id) was seen within the dedup window is counted as a duplicate.
//
// The counts are summed in Lua and written once per distinct type, source and minute
// (and one SADD per 1000 subjects), not once per event: a batch of 500 events of a
// few types costs about 510 Redis commands instead of about 3000, and Redis was the
// analytics consumer's bottleneck (see BENCHMARKS.md). Only the dedup SET stays per
// event, since it decides what is counted.
//
// KEYS: 1 offsets hash, 2 types hash, 3 sources hash, 4 minutes hash, 5 subjects set,
// 6 events counter, 7.. one dedup key per fact.
// ARGV: 1 partition field ("" in push mode), 2 next offset, 3 dedup ttl ms, then
// 5 values per fact: offset, type, source, minute, subject.
// Returns {applied, duplicates, replayed}.
var applyScript = redis.NewScript(`
local stored = -1
if ARGV[1] ~= '' then
  stored = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
end
local applied, dups, replayed = 0, 0, 0
local types, sources, minutes, subjects, nsub = {}, {}, {}, {}, 0
local n = #KEYS - 6
for i = 1, n do
  local base = 3 + (i - 1) * 5
  local offset = tonumber(ARGV[base + 1])
  if offset >= 0 and offset < stored then
    replayed = replayed + 1
  elseif redis.call('SET', KEYS[6 + i], '1', 'NX', 'PX', ARGV[3]) then
    local t, s, m = ARGV[base + 2], ARGV[base + 3], ARGV[base + 4]
    types[t] = (types[t] or 0) + 1
    sources[s] = (sources[s] or 0) + 1
    minutes[m] = (minutes[m] or 0) + 1
    if ARGV[base + 5] ~= '' then
      nsub = nsub + 1
      subjects[nsub] = ARGV[base + 5]
    end
    applied = applied + 1
  else
    dups = dups + 1
  end
end
for k, v in pairs(types) do redis.call('HINCRBY', KEYS[2], k, v) end
for k, v in pairs(sources) do redis.call('HINCRBY', KEYS[3], k, v) end
for k, v in pairs(minutes) do redis.call('HINCRBY', KEYS[4], k, v) end
-- unpack is bounded by Lua's C stack (about 8000 values): add subjects in chunks.
for i = 1, nsub, 1000 do
  redis.call('SADD', KEYS[5], unpack(subjects, i, math.min(i + 999, nsub)))
end
if applied > 0 then
  redis.call('INCRBY', KEYS[6], applied)
end
if ARGV[1] ~= '' and tonumber(ARGV[2]) > stored then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return {applied, dups, replayed}
`)

// ApplyResult counts what one Apply did.
type ApplyResult struct {
	Applied    int // facts counted now
	Duplicates int // facts whose event was counted before
	Replayed   int // facts below the stored offset, skipped
}

// Apply counts facts and, when partition >= 0, stores next as the partition's next
// offset for (group, topicID), atomically. Facts with Offset < the stored offset are
// skipped. topicID keys the offsets, so a recreated topic starts afresh.
func (s *Analytics) Apply(ctx context.Context, group, topicID string, partition int32, next int64, facts []Fact) (ApplyResult, error) {
	if len(facts) == 0 && partition < 0 {
		return ApplyResult{}, nil
	}
	keys := make([]string, 0, 6+len(facts))
	keys = append(keys, s.offsetsKey(group, topicID), s.key("types"), s.key("sources"), s.key("minutes"), s.key("subjects"), s.key("events"))
	args := make([]any, 0, 3+5*len(facts))
	field := ""
	if partition >= 0 {
		field = strconv.FormatInt(int64(partition), 10)
	}
	args = append(args, field, next, s.dedup.Milliseconds())
	for _, f := range facts {
		keys = append(keys, s.prefix+"analytics:seen:"+EventKey(f.Source, f.ID))
		args = append(args, f.Offset, f.Type, f.Source, f.Time.UTC().Truncate(time.Minute).Format(time.RFC3339), f.Subject)
	}
	res, err := applyScript.Run(ctx, s.rdb, keys, args...).Int64Slice()
	if err != nil {
		return ApplyResult{}, fmt.Errorf("apply %d facts: %w", len(facts), err)
	}
	return ApplyResult{Applied: int(res[0]), Duplicates: int(res[1]), Replayed: int(res[2])}, nil
}

// Offsets returns the stored next offset per partition for (group, topicID).
func (s *Analytics) Offsets(ctx context.Context, group, topicID string) (map[int32]int64, error) {
	m, err := s.rdb.HGetAll(ctx, s.offsetsKey(group, topicID)).Result()
	if err != nil {
		return nil, fmt.Errorf("stored offsets of %s: %w", group, err)
	}
	out := make(map[int32]int64, len(m))
	for k, v := range m {
		p, err1 := strconv.ParseInt(k, 10, 32)
		o, err2 := strconv.ParseInt(v, 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("stored offsets of %s: bad entry %q=%q: %w", group, k, v, err)
		}
		out[int32(p)] = o
	}
	return out, nil
}

// Stats is the aggregate view the read API serves.
type Stats struct {
	Events   int64            `json:"events"`
	Types    map[string]int64 `json:"types"`
	Sources  map[string]int64 `json:"sources"`
	Subjects int64            `json:"subjects"`
	Minutes  map[string]int64 `json:"minutes"`
}

// Stats reads the aggregates.
func (s *Analytics) Stats(ctx context.Context) (Stats, error) {
	pipe := s.rdb.Pipeline()
	events := pipe.Get(ctx, s.key("events"))
	types := pipe.HGetAll(ctx, s.key("types"))
	sources := pipe.HGetAll(ctx, s.key("sources"))
	minutes := pipe.HGetAll(ctx, s.key("minutes"))
	subjects := pipe.SCard(ctx, s.key("subjects"))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Stats{}, fmt.Errorf("read stats: %w", err)
	}
	st := Stats{Types: counts(types.Val()), Sources: counts(sources.Val()), Minutes: counts(minutes.Val()), Subjects: subjects.Val()}
	st.Events, _ = strconv.ParseInt(events.Val(), 10, 64)
	return st, nil
}

func counts(m map[string]string) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k], _ = strconv.ParseInt(v, 10, 64)
	}
	return out
}

func (s *Analytics) key(name string) string { return s.prefix + "analytics:" + name }

func (s *Analytics) offsetsKey(group, topicID string) string {
	return s.prefix + "analytics:offsets:" + group + ":" + topicID
}
