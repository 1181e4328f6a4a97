package store

import (
	"context"
	"crypto/sha256"
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
// (and one SADD per 1000 subjects), not once per event. Events are remembered as the
// 16-byte digests of their (source, id) (EventKey's, unencoded) in one set per dedup
// epoch (the window W long, numbered from Redis's own clock, so every consumer and
// replica agrees): a batch checks its digests against the current and the previous
// epoch's set with one SMISMEMBER each and adds the new ones with one SADD per 1000,
// instead of a SET NX PX key per event, which made Redis spend ~8 µs of CPU per
// record (see BENCHMARKS.md). An event is so remembered for at least W and at most 2W.
// Every batch UNLINKs the set of two epochs before, which is no longer checked, so
// Redis frees it in the background (a no-op once it is gone); each set also expires
// one epoch after that, for when no batch comes (an expiry would free a large set in Redis's main
// loop, unless lazyfree-lazy-expire is on).
//
// KEYS: 1 offsets hash, 2 types hash, 3 sources hash, 4 minutes hash, 5 subjects set,
// 6 events counter.
// ARGV: 1 partition field ("" in push mode), 2 next offset, 3 dedup window ms, 4 the
// prefix of the epoch sets' keys, 5 the number G of (type, source, minute) groups,
// then G triples type, source, minute, then 4 values per fact: offset, digest, group
// (1-based), subject.
// Returns {applied, duplicates, replayed}.
var applyScript = redis.NewScript(`
local stored = -1
if ARGV[1] ~= '' then
  stored = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
end
local w = tonumber(ARGV[3])
local clock = redis.call('TIME')
local epoch = math.floor((tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)) / w)
local function set(e) return ARGV[4] .. string.format('%.0f', e * w) end
local cur, prev = set(epoch), set(epoch - 1)
redis.call('UNLINK', set(epoch - 2))

local ngroups = tonumber(ARGV[5])
local base = 5 + 3 * ngroups
local n = (#ARGV - base) / 4
local applied, dups, replayed = 0, 0, 0
local live, digests, m = {}, {}, 0
for i = 1, n do
  local a = base + (i - 1) * 4
  local offset = tonumber(ARGV[a + 1])
  if offset >= 0 and offset < stored then
    replayed = replayed + 1
  else
    m = m + 1
    live[m] = a
    digests[m] = ARGV[a + 2]
  end
end

-- unpack is bounded by Lua's C stack (about 8000 values): work in chunks of 1000.
local seen = {}
for _, key in ipairs({cur, prev}) do
  if m > 0 and redis.call('EXISTS', key) == 1 then
    for i = 1, m, 1000 do
      local r = redis.call('SMISMEMBER', key, unpack(digests, i, math.min(i + 999, m)))
      for k = 1, #r do
        if r[k] == 1 then seen[digests[i + k - 1]] = true end
      end
    end
  end
end

local counts, new, nnew, subjects, nsub = {}, {}, 0, {}, 0
for k = 1, m do
  local d = digests[k]
  if seen[d] then
    dups = dups + 1
  else
    seen[d] = true -- a later fact of the same event in this batch is a duplicate
    nnew = nnew + 1
    new[nnew] = d
    local a = live[k]
    local g = tonumber(ARGV[a + 3])
    counts[g] = (counts[g] or 0) + 1
    if ARGV[a + 4] ~= '' then
      nsub = nsub + 1
      subjects[nsub] = ARGV[a + 4]
    end
  end
end
applied = nnew
for i = 1, nnew, 1000 do
  redis.call('SADD', cur, unpack(new, i, math.min(i + 999, nnew)))
end
if nnew > 0 then
  redis.call('PEXPIREAT', cur, string.format('%.0f', (epoch + 3) * w))
end

local types, sources, minutes = {}, {}, {}
for g, c in pairs(counts) do
  local a = 5 + (g - 1) * 3
  local t, s, mi = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  types[t] = (types[t] or 0) + c
  sources[s] = (sources[s] or 0) + c
  minutes[mi] = (minutes[mi] or 0) + c
end
for k, v in pairs(types) do redis.call('HINCRBY', KEYS[2], k, v) end
for k, v in pairs(sources) do redis.call('HINCRBY', KEYS[3], k, v) end
for k, v in pairs(minutes) do redis.call('HINCRBY', KEYS[4], k, v) end
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

// factGroup is what a fact adds to besides the event count: its type, source and minute.
type factGroup struct {
	typ, source string
	minute      int64 // Unix seconds of the minute
}

// Apply counts facts and, when partition >= 0, stores next as the partition's next
// offset for (group, topicID), atomically. Facts with Offset < the stored offset are
// skipped. topicID keys the offsets, so a recreated topic starts afresh.
func (s *Analytics) Apply(ctx context.Context, group, topicID string, partition int32, next int64, facts []Fact) (ApplyResult, error) {
	if len(facts) == 0 && partition < 0 {
		return ApplyResult{}, nil
	}
	keys := []string{s.offsetsKey(group, topicID), s.key("types"), s.key("sources"), s.key("minutes"), s.key("subjects"), s.key("events")}
	field := ""
	if partition >= 0 {
		field = strconv.FormatInt(int64(partition), 10)
	}
	// The (type, source, minute) groups of the batch, each sent once; a batch of a
	// busy topic has a handful. The facts' values follow them.
	groups := make(map[factGroup]int, 8)
	gargs := make([]any, 0, 5+3*8)
	gargs = append(gargs, field, next, s.window(), s.key("seen:"), 0)
	factArgs := make([]any, 0, 4*len(facts))
	// The digests share one buffer: one allocation per batch, not per fact.
	digests := make([]byte, 0, digestLen*len(facts))
	var buf []byte
	for _, f := range facts {
		minute := f.Time.Unix()
		minute -= ((minute % 60) + 60) % 60
		k := factGroup{f.Type, f.Source, minute}
		gi, ok := groups[k]
		if !ok {
			gi = len(groups) + 1
			groups[k] = gi
			gargs = append(gargs, f.Type, f.Source, time.Unix(minute, 0).UTC().Format(time.RFC3339))
		}
		buf = appendIdentity(buf[:0], f.Source, f.ID)
		sum := sha256.Sum256(buf)
		digests = append(digests, sum[:digestLen]...)
		factArgs = append(factArgs, f.Offset, digests[len(digests)-digestLen:], gi, f.Subject)
	}
	gargs[4] = len(groups)
	args := append(gargs, factArgs...)
	res, err := applyScript.Run(ctx, s.rdb, keys, args...).Int64Slice()
	if err != nil {
		return ApplyResult{}, fmt.Errorf("apply %d facts: %w", len(facts), err)
	}
	return ApplyResult{Applied: int(res[0]), Duplicates: int(res[1]), Replayed: int(res[2])}, nil
}

// digestLen is how much of the SHA-256 of (source, id) identifies an event: 128 bits,
// as EventKey, so no one can make another's event look seen.
const digestLen = 16

// appendIdentity appends what EventKey hashes: source, a zero byte, id.
func appendIdentity(b []byte, source, id string) []byte {
	b = append(b, source...)
	b = append(b, 0)
	return append(b, id...)
}

// window is the dedup window in milliseconds, at least 1.
func (s *Analytics) window() int64 { return max(s.dedup.Milliseconds(), 1) }

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
