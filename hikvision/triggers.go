package hikvision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/events"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/guard"
	"github.com/go2rtc-hikvision/go2rtc-hikvision/internal/isapi"
)

// States of TriggersHealth.
const (
	TriggersReading      = "reading"       // not read yet, or read again after a failure
	TriggersRead         = "read"          // read: Sent and NotSent are the device's
	TriggersNotSupported = "not_supported" // the device has no trigger list (404/403)
	TriggersUnreadable   = "unreadable"    // the device's answer was not a trigger list
	TriggersRefused      = "refused"       // the login was refused (wrong password, lock, privilege)
)

// TriggersHealth is what the device's event triggers say about its events:
// which it sends to the alert stream ("Notify Surveillance Center") and
// which it has but never sends.
type TriggersHealth struct {
	State string `json:"state"` // TriggersReading, TriggersRead, ...
	// Sent are the events the device sends (their MQTT entities exist
	// from the start).
	Sent []TriggerInfo `json:"sent"`
	// NotSent are the events the device has but does not send to the
	// alert stream: no event of these ever arrives.
	NotSent   []TriggerInfo `json:"not_sent"`
	LastError string        `json:"last_error,omitempty"` // redacted
}

// TriggerInfo is one (channel, type) of a device's triggers.
type TriggerInfo struct {
	Channel int      `json:"channel"` // as in events: 0 the device itself
	Type    string   `json:"type"`    // normalised: motion, linedetection, io, ...
	Stream  string   `json:"stream,omitempty"`
	Methods []string `json:"methods"` // the device's notification methods (center, record, email, ...)
}

func (t TriggerInfo) String() string {
	if t.Channel == 0 {
		return t.Type
	}
	return fmt.Sprintf("%s ch%d", t.Type, t.Channel)
}

// triggerKey is an event entity: a (channel, type) of a device.
type triggerKey struct {
	channel int
	typ     string
}

// mapTriggers turns the device's triggers into our (channel, type)
// entities, through the channel mapping the alert stream uses: an event
// reported with the trigger's channel fields lands on the same entity. A
// (channel, type) is sent if any of its triggers notifies "center".
func mapTriggers(list []isapi.EventTrigger, channels events.ChannelMapper) (sent, notSent []TriggerInfo) {
	byKey := map[triggerKey]*TriggerInfo{}
	center := map[triggerKey]bool{}
	var keys []triggerKey
	for _, t := range list {
		typ := events.NormaliseType(t.EventType)
		if typ == "" {
			continue
		}
		port := t.IOPort
		if port == 0 {
			port = t.DynIOPort
		}
		k := triggerKey{channels(events.ChannelIDs{Channel: t.VideoChannel, DynChannel: t.DynVideoChannel, IOPort: port}), typ}
		ti := byKey[k]
		if ti == nil {
			ti = &TriggerInfo{Channel: k.channel, Type: typ, Methods: []string{}}
			byKey[k] = ti
			keys = append(keys, k)
		}
		for _, m := range t.Methods {
			if !slices.Contains(ti.Methods, m) {
				ti.Methods = append(ti.Methods, m)
			}
		}
		center[k] = center[k] || t.Notifies(isapi.NotifyCenter)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].channel != keys[j].channel {
			return keys[i].channel < keys[j].channel
		}
		return keys[i].typ < keys[j].typ
	})
	sent, notSent = []TriggerInfo{}, []TriggerInfo{}
	for _, k := range keys {
		if center[k] {
			sent = append(sent, *byKey[k])
		} else {
			notSent = append(notSent, *byKey[k])
		}
	}
	return sent, notSent
}

// readTriggers reads the device's event triggers once (through the login
// guard), declares the MQTT entities of the events it sends and says which
// events it never sends. A failure that is not an answer (no connection, a
// busy device, a guard waiting for another login) leaves it to be read
// again; a refusal, a device without the resource or an unreadable answer
// ends it.
func (de *deviceEvents) readTriggers(ctx context.Context, c *isapi.Client) {
	de.mu.Lock()
	if de.trig.State != TriggersReading {
		de.mu.Unlock()
		return
	}
	de.mu.Unlock()
	var list []isapi.EventTrigger
	err := de.dev.Do(ctx, func(ctx context.Context) error {
		var err error
		list, err = c.EventTriggers(ctx)
		return err
	})
	log := de.ev.m.log
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		state := TriggersReading
		switch k := guard.Classify(err); {
		case errors.Is(err, isapi.ErrNotSupported) || k == guard.KindNotSupported:
			state = TriggersNotSupported
		case k == guard.KindProtocol:
			state = TriggersUnreadable
		case k == guard.KindWrongCredentials || k == guard.KindLocked || k == guard.KindNoCredentials ||
			k == guard.KindNotActivated || k == guard.KindLowPrivilege:
			state = TriggersRefused
		}
		msg := de.dev.redact(de.dev.safeErr(err).Error())
		de.mu.Lock()
		de.trig.State, de.trig.LastError = state, msg
		de.mu.Unlock()
		log.Debug().Str("device", de.dev.host).Str("state", state).Str("err", msg).
			Msg("[hikvision] events: event triggers not read")
		return
	}
	sent, notSent := mapTriggers(list, de.channels)
	for i := range sent {
		sent[i].Stream = firstName(de.ev.streamNames(de.addr, sent[i].Channel))
	}
	for i := range notSent {
		notSent[i].Stream = firstName(de.ev.streamNames(de.addr, notSent[i].Channel))
	}
	de.mu.Lock()
	de.trig = TriggersHealth{State: TriggersRead, Sent: sent, NotSent: notSent}
	de.mu.Unlock()
	log.Debug().Str("device", de.dev.host).Int("triggers", len(list)).Int("sent", len(sent)).
		Msg("[hikvision] events: event triggers read")
	if pub := de.ev.pub; pub != nil {
		for _, t := range sent {
			if err := pub.Declare(de.addr, t.Stream, t.Channel, t.Type); err != nil {
				log.Debug().Str("device", de.dev.host).Str("event", t.String()).Err(err).
					Msg("[hikvision] mqtt: event entity not declared")
			}
		}
	}
	if len(notSent) > 0 {
		names := make([]string, len(notSent))
		for i, t := range notSent {
			names[i] = t.String()
		}
		e := log.Info()
		what := "the device does not send these events to the alert stream: "
		if len(sent) == 0 {
			e = log.Warn() // nothing will ever arrive
			what = "the device sends no event to the alert stream; it has: "
		}
		e.Str("device", de.dev.host).Msg(`[hikvision] events: ` + what + strings.Join(names, ", ") +
			` (tick "Notify Surveillance Center" in its event settings)`)
	}
}

// triggersHealth is a copy of the device's trigger state.
func (de *deviceEvents) triggersHealth() *TriggersHealth {
	de.mu.Lock()
	defer de.mu.Unlock()
	t := de.trig
	t.Sent, t.NotSent = append([]TriggerInfo{}, t.Sent...), append([]TriggerInfo{}, t.NotSent...)
	return &t
}

// retryRefusedTriggers makes triggers the device refused to be read again
// (its credentials work now).
func (de *deviceEvents) retryRefusedTriggers() {
	de.mu.Lock()
	if de.trig.State == TriggersRefused {
		de.trig.State = TriggersReading
	}
	de.mu.Unlock()
}

// triggersPending: the triggers are to be read again.
func (de *deviceEvents) triggersPending() bool {
	de.mu.Lock()
	defer de.mu.Unlock()
	return de.trig.State == TriggersReading
}
