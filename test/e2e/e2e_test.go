// Package e2e runs the whole pipeline in-process on real input: the sample GitHub
// events. With KAFKA_BROKERS and REDIS_ADDR set it runs on the real broker and Redis.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"function/test/pipelinetest"
)

// sample is what the sample file says the pipeline must count.
type sample struct {
	lines    [][]byte
	types    map[string]int64
	sources  map[string]int64
	subjects map[string]bool
	ids      map[string]map[string]bool // source -> ids
}

func loadSample(t *testing.T) sample {
	s := sample{lines: pipelinetest.SampleLines(t), types: map[string]int64{}, sources: map[string]int64{}, subjects: map[string]bool{}, ids: map[string]map[string]bool{}}
	for _, l := range s.lines {
		var e struct{ ID, Source, Type, Subject string }
		if err := json.Unmarshal(l, &e); err != nil {
			t.Fatal(err)
		}
		s.types[e.Type]++
		s.sources[e.Source]++
		if e.Subject != "" {
			s.subjects[e.Subject] = true
		}
		if s.ids[e.Source] == nil {
			s.ids[e.Source] = map[string]bool{}
		}
		s.ids[e.Source][e.ID] = true
	}
	if len(s.lines) != 205 {
		t.Fatalf("sample file has %d events, want 205", len(s.lines))
	}
	return s
}

func (s sample) batch() []byte {
	return append(append([]byte("["), bytes.Join(s.lines, []byte(","))...), ']')
}

// replayOneByOne posts every sample event in structured mode and requires 202 each.
func replayOneByOne(t *testing.T, p *pipelinetest.Pipeline, s sample) {
	t.Helper()
	for i, l := range s.lines {
		if code, body := p.Post("application/cloudevents+json", l, nil); code != http.StatusAccepted {
			t.Fatalf("event %d: status %d: %s", i, code, body)
		}
	}
}

func checkCounts(t *testing.T, p *pipelinetest.Pipeline, s sample) {
	t.Helper()
	st := p.Stats()
	if st.Events != int64(len(s.lines)) {
		t.Errorf("events = %d, want %d", st.Events, len(s.lines))
	}
	if !maps.Equal(st.Types, s.types) {
		t.Errorf("per-type counts differ from the file's:\n got %v\nwant %v", st.Types, s.types)
	}
	if !maps.Equal(st.Sources, s.sources) {
		t.Errorf("per-source counts differ from the file's:\n got %v\nwant %v", st.Sources, s.sources)
	}
	if st.Subjects != int64(len(s.subjects)) {
		t.Errorf("distinct subjects = %d, want %d", st.Subjects, len(s.subjects))
	}
	for source, ids := range s.ids {
		l := p.Notifications(source, 1000)
		if l.Total != int64(len(ids)) {
			t.Errorf("channel %s: total %d, want %d", source, l.Total, len(ids))
		}
		got := map[string]int{}
		for _, n := range l.Notifications {
			got[n.ID]++
			if n.Title == "" || n.Type == "" || n.Source != source {
				t.Errorf("channel %s: incomplete notification %+v", source, n)
			}
		}
		for id := range ids {
			if got[id] != 1 {
				t.Errorf("channel %s: event %s has %d notifications, want exactly 1", source, id, got[id])
			}
		}
		if len(got) != len(ids) {
			t.Errorf("channel %s: %d distinct notifications, want %d", source, len(got), len(ids))
		}
	}
}

// TestReplaySampleTwice is the foundation's end-to-end check: the sample file is
// accepted whole, counted and notified exactly once; after the functions restart
// (broker and Redis kept) a second replay changes nothing.
func TestReplaySampleTwice(t *testing.T) {
	s := loadSample(t)
	p := pipelinetest.Start(t)

	replayOneByOne(t, p, s)
	p.Eventually(30*time.Second, "all events counted", func() (bool, string) {
		st := p.Stats()
		return st.Events == int64(len(s.lines)), fmt.Sprintf("events=%d", st.Events)
	})
	p.WaitCaughtUp(30 * time.Second)
	checkCounts(t, p, s)

	p.StopFunctions()
	p.StartFunctions()
	if code, body := p.Post("application/cloudevents-batch+json", s.batch(), nil); code != http.StatusAccepted {
		t.Fatalf("batch replay: status %d: %s", code, body)
	}
	// Both groups must have handled the second copy before "nothing changed" means
	// anything.
	p.WaitCaughtUp(30 * time.Second)
	checkCounts(t, p, s)
	if d := p.F.Analytics.Store(); d == nil {
		t.Fatal("no analytics store")
	}
}

// TestRecreatedTopicDoesNotInheritOffsets deletes and recreates the events topic
// under the same name: analytics' offsets stored for the old topic ID must not make
// it skip the new topic's records (which start again at offset 0).
func TestRecreatedTopicDoesNotInheritOffsets(t *testing.T) {
	s := loadSample(t)
	p := pipelinetest.Start(t)
	replayOneByOne(t, p, s)
	p.WaitCaughtUp(30 * time.Second)
	before := p.Stats().Events

	p.StopFunctions()
	admin, err := sarama.NewClusterAdminFromClient(p.Client())
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteTopic(p.Topic()); err != nil {
		t.Fatal(err)
	}
	pipelinetest.Eventually(t, 30*time.Second, "topic deleted", func() (bool, string) {
		_ = p.Client().RefreshMetadata()
		topics, err := p.Client().Topics()
		for _, tp := range topics {
			if tp == p.Topic() {
				return false, "still listed"
			}
		}
		return err == nil, fmt.Sprint(err)
	})
	p.StartFunctions() // recreates the topic: a new topic ID

	// New events (new ids, so deduplication cannot hide them) land at offsets that
	// the old topic's stored offsets already passed.
	const n = 20
	for i := 0; i < n; i++ {
		ev := fmt.Sprintf(`{"specversion":"1.0","id":"recreated-%d","source":"/recreated","type":"test.recreated","subject":"k%d"}`, i, i%3)
		if code, body := p.Post("application/cloudevents+json", []byte(ev), nil); code != http.StatusAccepted {
			t.Fatalf("post: %d %s", code, body)
		}
	}
	p.WaitCaughtUp(30 * time.Second)
	if got := p.Stats().Events - before; got != n {
		t.Fatalf("after recreating the topic, %d new events counted, want %d (stored offsets were inherited?)", got, n)
	}
}
