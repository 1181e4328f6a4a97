package verify

import (
	"fmt"
	"strconv"
)

// observation is what came out for one key.
type observation struct {
	// Notified are the sequence numbers of the channel's notifications in the order
	// they were stored (oldest first); -1 for one that is not a verifier event.
	Notified []int
	// Total is the channel's all-time notification count.
	Total int64
	// Counted is analytics' count for the key's source.
	Counted int64
	// Landed counts the copies of each sequence number in Kafka; nil when the topic
	// was not read.
	Landed map[int]int
}

// Problem is one finding about one event (Seq >= 0) or one key (Seq < 0).
type Problem struct {
	Key    string `json:"key"`
	Seq    int    `json:"seq"`
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// Problem kinds.
const (
	KafkaLost             = "kafka-lost"             // acknowledged, not in the topic
	NotificationLost      = "notification-lost"      // acknowledged or landed, no notification
	NotificationDuplicate = "notification-duplicate" // more than one notification
	Reordered             = "reordered"              // notified after a later event of its key
	AnalyticsLost         = "analytics-lost"         // the key's count is below the events that landed
	AnalyticsDuplicate    = "analytics-duplicate"    // the key's count is above them
	Foreign               = "foreign"                // a notification in the key's channel that the verifier did not send
	TrimmedChannel        = "trimmed-channel"        // more notifications than the read returned: the check is incomplete
)

// keyCheck is the verdict on one key.
type keyCheck struct {
	Lost, Duplicated, Reordered int64

	KafkaLost, NotificationLost, NotificationDuplicated int64
	AnalyticsLost, AnalyticsDuplicated                  int64
	Landed, KafkaCopies, UnackedDelivered               int64
	Notified, Counted, Expected                         int64

	Problems []Problem
}

// check judges one key's outputs against what was sent (see the package
// documentation for the rules).
func check(k keyResult, o observation) keyCheck {
	var c keyCheck
	add := func(seq int, kind, format string, args ...any) {
		c.Problems = append(c.Problems, Problem{Key: k.Key, Seq: seq, Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}
	n := len(k.Events)
	notes := make([]int, n)
	maxSeq := -1
	for i, seq := range o.Notified {
		if seq < 0 || seq >= n {
			add(-1, Foreign, "notification %d of the channel is not one of the %d events sent", i, n)
			continue
		}
		notes[seq]++
		if notes[seq] > 1 {
			continue // a duplicate: counted below, not an ordering matter
		}
		if seq < maxSeq {
			c.Reordered++
			add(seq, Reordered, "notified after event %d", maxSeq)
		}
		maxSeq = max(maxSeq, seq)
	}
	c.Notified = int64(len(o.Notified))
	if o.Total > int64(len(o.Notified)) {
		add(-1, TrimmedChannel, "the channel holds %d notifications, the read returned %d", o.Total, len(o.Notified))
	}

	// Per event: what landed must be notified once; what was acknowledged must
	// also have landed.
	var expected, unackedQuiet int64 // events analytics must count; unacked ones nobody saw
	lostEvents := map[int]bool{}
	for seq, ev := range k.Events {
		copies := -1 // unknown
		if o.Landed != nil {
			copies = o.Landed[seq]
			c.KafkaCopies += int64(copies)
		}
		// Notified proves landed, whatever the topic read says.
		landed := copies > 0 || notes[seq] > 0 || (copies < 0 && ev.Acked)
		if landed {
			expected++
			c.Landed++
		}
		if notes[seq] > 1 {
			c.NotificationDuplicated += int64(notes[seq] - 1)
			add(seq, NotificationDuplicate, "%d notifications", notes[seq])
		}
		if !ev.Acked && notes[seq] > 0 {
			c.UnackedDelivered++
		}
		if copies < 0 && !ev.Acked && notes[seq] == 0 {
			unackedQuiet++
		}
		switch {
		case ev.Acked && copies == 0 && notes[seq] == 0:
			c.KafkaLost++
			lostEvents[seq] = true
			add(seq, KafkaLost, "acknowledged (202) but not in the topic")
		case landed && notes[seq] == 0:
			c.NotificationLost++
			lostEvents[seq] = true
			how := "acknowledged (202)"
			if !ev.Acked {
				how = "not acknowledged, but in the topic"
			}
			add(seq, NotificationLost, "%s, no notification", how)
		}
	}

	// Per key: analytics must have counted each landed event once. Without the
	// topic, unacknowledged events nobody saw may or may not have landed.
	c.Counted, c.Expected = o.Counted, expected
	if o.Counted < expected {
		c.AnalyticsLost = expected - o.Counted
		add(-1, AnalyticsLost, "analytics counted %d, %d events landed", o.Counted, expected)
	} else if o.Counted > expected+unackedQuiet {
		c.AnalyticsDuplicated = o.Counted - expected - unackedQuiet
		add(-1, AnalyticsDuplicate, "analytics counted %d, %d events landed", o.Counted, expected+unackedQuiet)
	}

	// lost counts distinct events where it can: an analytics shortfall is assumed
	// to cover the events already lost elsewhere first (a lower bound).
	c.Lost = int64(len(lostEvents))
	landedLost := int64(0)
	for seq := range lostEvents {
		if notes[seq] == 0 && (o.Landed == nil || o.Landed[seq] > 0) {
			landedLost++
		}
	}
	if extra := c.AnalyticsLost - landedLost; extra > 0 {
		c.Lost += extra
	}
	c.Duplicated = c.NotificationDuplicated + c.AnalyticsDuplicated
	return c
}

// seqOf reads a verifier event id back into its sequence number (-1 if it is not
// one).
func seqOf(id string) int {
	n, err := strconv.Atoi(id)
	if err != nil || n < 0 || strconv.Itoa(n) != id {
		return -1
	}
	return n
}
