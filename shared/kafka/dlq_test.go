package kafka_test

import (
	"fmt"
	"testing"

	"github.com/IBM/sarama"

	"function/shared/kafka"
)

func TestParseDLQOffsets(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"", "[]", true},
		{"3", "[{-1 3}]", true},
		{"0:3, 2:10,7", "[{0 3} {2 10} {-1 7}]", true},
		{"x", "", false},
		{"1:", "", false},
		{"-1", "", false},
		{"a:1", "", false},
	} {
		got, err := kafka.ParseDLQOffsets(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseDLQOffsets(%q) err = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if s := fmt.Sprint(got); tc.ok && s != tc.want {
			t.Errorf("ParseDLQOffsets(%q) = %s, want %s", tc.in, s, tc.want)
		}
	}
}

func TestDeadLetterFilter(t *testing.T) {
	h := func(k, v string) *sarama.RecordHeader { return &sarama.RecordHeader{Key: []byte(k), Value: []byte(v)} }
	d := kafka.ParseDeadLetter(&sarama.ConsumerMessage{Partition: 0, Offset: 4, Key: []byte("k"), Headers: []*sarama.RecordHeader{
		h("ce_id", "e1"), h("ce_type", "push"), h("ce_source", "/repo"),
		h(kafka.HeaderDLQError, "poison: bad template"), h(kafka.HeaderDLQAttempts, "1"), h(kafka.HeaderDLQGroup, "notifications"),
		h(kafka.HeaderDLQTopic, "events"), h(kafka.HeaderDLQPartition, "2"), h(kafka.HeaderDLQOffset, "17"),
	}})
	if d.OriginalTopic != "events" || d.OriginalPartition != 2 || d.OriginalOffset != 17 || d.Attempts != 1 || d.EventID != "e1" {
		t.Fatalf("ParseDeadLetter = %+v", d)
	}
	for _, tc := range []struct {
		name string
		f    kafka.DeadLetterFilter
		want bool
	}{
		{"empty filter", kafka.DeadLetterFilter{}, true},
		{"offset, any partition", kafka.DeadLetterFilter{Offsets: []kafka.DLQOffset{{Partition: -1, Offset: 4}}}, true},
		{"offset on its partition", kafka.DeadLetterFilter{Offsets: []kafka.DLQOffset{{Partition: 0, Offset: 4}}}, true},
		{"offset on another partition", kafka.DeadLetterFilter{Offsets: []kafka.DLQOffset{{Partition: 1, Offset: 4}}}, false},
		{"another offset", kafka.DeadLetterFilter{Offsets: []kafka.DLQOffset{{Partition: -1, Offset: 5}}}, false},
		{"type and source", kafka.DeadLetterFilter{Type: "push", Source: "/repo"}, true},
		{"other type", kafka.DeadLetterFilter{Type: "issue"}, false},
		{"id", kafka.DeadLetterFilter{ID: "e1"}, true},
		{"group", kafka.DeadLetterFilter{Group: "analytics"}, false},
		{"error substring", kafka.DeadLetterFilter{ErrorContains: "template"}, true},
		{"error substring and other source", kafka.DeadLetterFilter{ErrorContains: "template", Source: "/other"}, false},
	} {
		if got := tc.f.Match(d); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.name, got, tc.want)
		}
	}
}
