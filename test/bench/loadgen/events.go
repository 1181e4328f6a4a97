package loadgen

import (
	"strconv"
	"strings"
	"time"
)

// Events describes the CloudEvents a run sends. Every event gets a unique id (RunID
// plus its sequence number), because tide's consumers deduplicate by (source, id):
// two runs with the same ids would be counted once.
type Events struct {
	RunID string // prefix of every id; distinct per run
	// Source is the events' source; with Sources > 1 it gets "/<n>" appended (the
	// notification channel follows the source, so this spreads notifications).
	Source  string
	Sources int
	Type    string
	// Keys is the key cardinality: event n has subject "key-<n % Keys>", which
	// ingest uses as its partition key (PARTITION_KEY_ATTRIBUTE=subject).
	Keys int
	// Size is the size of each event's data in bytes (a JSON object padded to it).
	Size int
}

func (e Events) withDefaults() Events {
	if e.RunID == "" {
		e.RunID = strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	if e.Source == "" {
		e.Source = "/bench/loadgen"
	}
	if e.Type == "" {
		e.Type = "dev.tide.bench"
	}
	e.Keys = max(e.Keys, 1)
	e.Sources = max(e.Sources, 1)
	e.Size = max(e.Size, len(`{"n":0,"pad":""}`))
	return e
}

// ID is event n's id.
func (e Events) ID(n int64) string { return e.RunID + "-" + strconv.FormatInt(n, 10) }

// SourceOf is event n's source.
func (e Events) SourceOf(n int64) string {
	if e.Sources <= 1 {
		return e.Source
	}
	return e.Source + "/" + strconv.FormatInt(n%int64(e.Sources), 10)
}

// Subject is event n's subject (its partition key).
func (e Events) Subject(n int64) string { return "key-" + strconv.FormatInt(n%int64(e.Keys), 10) }

// AppendData appends event n's data: {"n":N,"pad":"xxx…"} of exactly Size bytes.
func (e Events) AppendData(b []byte, n int64) []byte {
	start := len(b)
	b = append(b, `{"n":`...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, `,"pad":"`...)
	pad := e.Size - (len(b) - start) - len(`"}`)
	for ; pad > 0; pad-- {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// AppendStructured appends event n as one structured-mode JSON object whose time is
// at (the intended send time, so the notification's created_at minus it is the end
// to end latency).
func (e Events) AppendStructured(b []byte, n int64, at time.Time) []byte {
	b = append(b, `{"specversion":"1.0","id":"`...)
	b = append(b, e.ID(n)...)
	b = append(b, `","source":"`...)
	b = append(b, e.SourceOf(n)...)
	b = append(b, `","type":"`...)
	b = append(b, e.Type...)
	b = append(b, `","subject":"`...)
	b = append(b, e.Subject(n)...)
	b = append(b, `","time":"`...)
	b = at.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","datacontenttype":"application/json","data":`...)
	b = e.AppendData(b, n)
	return append(b, '}')
}

// AppendBatch appends events [first, first+count) as a JSON array.
func (e Events) AppendBatch(b []byte, first int64, count int, at time.Time) []byte {
	b = append(b, '[')
	for i := range count {
		if i > 0 {
			b = append(b, ',')
		}
		b = e.AppendStructured(b, first+int64(i), at)
	}
	return append(b, ']')
}

// IsOurs reports whether id belongs to this run.
func (e Events) IsOurs(id string) bool { return strings.HasPrefix(id, e.RunID+"-") }
