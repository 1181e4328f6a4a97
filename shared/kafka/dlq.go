package kafka

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// DeadLetter is one record of the dead-letter topic, as `tide dlq` shows it: where it
// is, where it came from, why it was set aside, and which event it carries.
type DeadLetter struct {
	// Partition and Offset locate the dead letter in the dead-letter topic.
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
	// OriginalTopic, OriginalPartition and OriginalOffset are where the record was
	// consumed from (tide_dlq_topic, _partition, _offset; -1 when missing).
	OriginalTopic     string `json:"original_topic"`
	OriginalPartition int32  `json:"original_partition"`
	OriginalOffset    int64  `json:"original_offset"`
	// Group is the consumer group that gave up on it.
	Group string `json:"group"`
	// Error is the last error; Attempts how often the record was handled.
	Error    string    `json:"error"`
	Attempts int       `json:"attempts"`
	Time     time.Time `json:"time"`
	// EventID, EventType and EventSource are the CloudEvent attributes (ce_ headers),
	// empty for a record that is not a binary-mode CloudEvent.
	EventID     string `json:"event_id"`
	EventType   string `json:"event_type"`
	EventSource string `json:"event_source"`
	Key         string `json:"key"`

	record *sarama.ConsumerMessage
}

// ParseDeadLetter reads a record of the dead-letter topic.
func ParseDeadLetter(r *sarama.ConsumerMessage) DeadLetter {
	d := DeadLetter{
		Partition: r.Partition, Offset: r.Offset,
		OriginalTopic:     string(Header(r, HeaderDLQTopic)),
		OriginalPartition: int32(headerInt(r, HeaderDLQPartition)),
		OriginalOffset:    headerInt(r, HeaderDLQOffset),
		Group:             string(Header(r, HeaderDLQGroup)),
		Error:             string(Header(r, HeaderDLQError)),
		Attempts:          int(headerInt(r, HeaderDLQAttempts)),
		EventID:           string(Header(r, "ce_id")),
		EventType:         string(Header(r, "ce_type")),
		EventSource:       string(Header(r, "ce_source")),
		Key:               string(r.Key),
		record:            r,
	}
	d.Time, _ = time.Parse(time.RFC3339Nano, string(Header(r, HeaderDLQTime)))
	return d
}

func headerInt(r *sarama.ConsumerMessage, key string) int64 {
	n, err := strconv.ParseInt(string(Header(r, key)), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// DLQOffset names one dead letter by its place in the dead-letter topic; Partition
// -1 means any partition (the dead-letter topic tide creates has one).
type DLQOffset struct {
	Partition int32
	Offset    int64
}

// ParseDLQOffsets reads a comma-separated list of OFFSET or PARTITION:OFFSET.
func ParseDLQOffsets(s string) ([]DLQOffset, error) {
	var out []DLQOffset
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		o := DLQOffset{Partition: -1}
		off := f
		if p, rest, ok := strings.Cut(f, ":"); ok {
			n, err := strconv.ParseInt(p, 10, 32)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("dead-letter offset %q: partition %q is not a number", f, p)
			}
			o.Partition, off = int32(n), rest
		}
		n, err := strconv.ParseInt(off, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("dead-letter offset %q: %q is not an offset", f, off)
		}
		o.Offset = n
		out = append(out, o)
	}
	return out, nil
}

// DeadLetterFilter selects dead letters; a zero field matches every dead letter,
// and a dead letter must match every field that is set.
type DeadLetterFilter struct {
	Offsets       []DLQOffset
	Type          string // the event type, exactly
	Source        string // the event source, exactly
	ID            string // the event id, exactly
	Group         string // the consumer group that dead-lettered it
	ErrorContains string // a substring of the error
}

// Match reports whether d is selected.
func (f DeadLetterFilter) Match(d DeadLetter) bool {
	if len(f.Offsets) > 0 {
		found := false
		for _, o := range f.Offsets {
			if o.Offset == d.Offset && (o.Partition < 0 || o.Partition == d.Partition) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return (f.Type == "" || f.Type == d.EventType) &&
		(f.Source == "" || f.Source == d.EventSource) &&
		(f.ID == "" || f.ID == d.EventID) &&
		(f.Group == "" || f.Group == d.Group) &&
		(f.ErrorContains == "" || strings.Contains(d.Error, f.ErrorContains))
}

// ReadDeadLetters reads every partition of topic from its log start to the
// high-water mark it has when the call starts, and returns the dead letters f
// selects, by partition and offset. Dead letters written meanwhile are not waited
// for. ctx bounds the whole read.
func ReadDeadLetters(ctx context.Context, client sarama.Client, topic string, f DeadLetterFilter) ([]DeadLetter, error) {
	parts, err := client.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("dead-letter topic %s: %w", topic, err)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("dead-letter consumer: %w", err)
	}
	defer consumer.Close()
	var out []DeadLetter
	for _, p := range parts {
		got, err := readPartition(ctx, client, consumer, topic, p)
		if err != nil {
			return nil, err
		}
		for _, r := range got {
			if d := ParseDeadLetter(r); f.Match(d) {
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// readPartition returns the records of topic/p from the log start to the current
// high-water mark.
func readPartition(ctx context.Context, client sarama.Client, consumer sarama.Consumer, topic string, p int32) ([]*sarama.ConsumerMessage, error) {
	start, err := client.GetOffset(topic, p, sarama.OffsetOldest)
	if err != nil {
		return nil, fmt.Errorf("log start of %s/%d: %w", topic, p, err)
	}
	end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
	if err != nil {
		return nil, fmt.Errorf("high-water mark of %s/%d: %w", topic, p, err)
	}
	if start >= end {
		return nil, nil
	}
	pc, err := consumer.ConsumePartition(topic, p, start)
	if err != nil {
		return nil, fmt.Errorf("read %s/%d: %w", topic, p, err)
	}
	defer pc.Close()
	var out []*sarama.ConsumerMessage
	for {
		select {
		case m := <-pc.Messages():
			out = append(out, m)
			if m.Offset >= end-1 {
				return out, nil
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("read %s/%d up to offset %d: %w", topic, p, end, ctx.Err())
		}
	}
}

// RedriveMessage is the record that re-drives d to topic: the original event as it
// was (key, value, timestamp and headers, the ce_ attributes included) without the
// tide_dlq_* headers. The consumers deduplicate by (source, id), so re-driving an
// event that was already handled, or re-driving it twice, has no second effect.
func RedriveMessage(d DeadLetter, topic string) *sarama.ProducerMessage {
	r := d.record
	m := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(r.Value), Timestamp: r.Timestamp}
	if r.Key != nil {
		m.Key = sarama.ByteEncoder(r.Key)
	}
	for _, h := range r.Headers {
		if h == nil || strings.HasPrefix(string(h.Key), dlqHeaderPrefix) {
			continue
		}
		m.Headers = append(m.Headers, *h)
	}
	return m
}

const dlqHeaderPrefix = "tide_dlq_"

// Redrive publishes the dead letters to topic (see RedriveMessage) and returns once
// Kafka acknowledged all of them. producer should be idempotent and partition like
// ingest (ProducerConfig), so a re-driven event lands beside the other events of its
// key.
func Redrive(producer sarama.SyncProducer, topic string, dls []DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	msgs := make([]*sarama.ProducerMessage, len(dls))
	for i, d := range dls {
		if d.record == nil {
			return fmt.Errorf("re-drive: dead letter %d:%d was not read from Kafka", d.Partition, d.Offset)
		}
		msgs[i] = RedriveMessage(d, topic)
	}
	if err := producer.SendMessages(msgs); err != nil {
		return fmt.Errorf("re-drive %d dead letters to %s: %w", len(msgs), topic, err)
	}
	return nil
}
