package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// WebhookMessage is Alertmanager's webhook payload (version 4), so existing
// receivers (chat bridges, paging) take jirabridge's alerts as they are.
type WebhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
}

// WebhookAlert is one alert of a WebhookMessage.
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"` // zero (0001-01-01T00:00:00Z) while firing
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// WebhookOptions configure a WebhookNotifier. URL is required.
type WebhookOptions struct {
	URL string // JIRABRIDGE_OPS_WEBHOOK_URL
	// Client is the HTTP client; default one with a 10 s timeout.
	Client *http.Client
	// Receiver is the payload's receiver field; default "jirabridge".
	Receiver string
	// ExternalURL is the status page's address (externalURL and each
	// alert's generatorURL).
	ExternalURL string
}

// WebhookNotifier posts events as Alertmanager webhook payloads, one POST
// per alert name (the group).
type WebhookNotifier struct {
	o WebhookOptions
}

// NewWebhookNotifier checks the options and builds the notifier.
func NewWebhookNotifier(o WebhookOptions) (*WebhookNotifier, error) {
	if o.URL == "" {
		return nil, errors.New("alert webhook: URL is required (JIRABRIDGE_OPS_WEBHOOK_URL)")
	}
	if !strings.HasPrefix(o.URL, "http://") && !strings.HasPrefix(o.URL, "https://") {
		return nil, errors.New("alert webhook: JIRABRIDGE_OPS_WEBHOOK_URL must start with http:// or https://")
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Receiver == "" {
		o.Receiver = "jirabridge"
	}
	return &WebhookNotifier{o: o}, nil
}

// Name is "webhook".
func (w *WebhookNotifier) Name() string { return "webhook" }

// Notify posts the events grouped by alert name. It stops at the first
// failure; the notifier's queue keeps everything, and a receiver sees a
// repeated payload at worst (Alertmanager receivers deduplicate by
// fingerprint and status).
func (w *WebhookNotifier) Notify(ctx context.Context, events []Event) error {
	for _, msg := range Payloads(events, w.o.Receiver, w.o.ExternalURL) {
		body, err := json.Marshal(msg)
		if err != nil {
			return fmt.Errorf("encode webhook payload: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.o.URL, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("build webhook request: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "jirabridge")
		resp, err := w.o.Client.Do(req)
		if err != nil {
			// The URL may carry a token: name only the host.
			return fmt.Errorf("post alert webhook to %s: %w", req.URL.Host, unwrapURLError(err))
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("post alert webhook to %s: status %s", req.URL.Host, resp.Status)
		}
	}
	return nil
}

func unwrapURLError(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// Payloads groups events by alert name into Alertmanager webhook messages,
// in the order of the names' first appearance. The latest event of each
// alert wins within a group.
func Payloads(events []Event, receiver, externalURL string) []WebhookMessage {
	var order []string
	groups := map[string][]Event{}
	for _, e := range events {
		if _, ok := groups[e.Name]; !ok {
			order = append(order, e.Name)
		}
		groups[e.Name] = append(groups[e.Name], e)
	}
	var out []WebhookMessage
	for _, name := range order {
		latest := map[string]int{}
		var alerts []WebhookAlert
		for _, e := range groups[name] {
			a := WebhookAlert{
				Status: e.Status, Labels: e.Labels(), Annotations: e.Annotations(),
				StartsAt: e.StartsAt.UTC(), GeneratorURL: externalURL, Fingerprint: e.Fingerprint(),
			}
			if e.Status == StatusResolved {
				a.EndsAt = e.EndsAt.UTC()
			}
			if i, ok := latest[a.Fingerprint]; ok {
				alerts[i] = a
				continue
			}
			latest[a.Fingerprint] = len(alerts)
			alerts = append(alerts, a)
		}
		status := StatusResolved
		for _, a := range alerts {
			if a.Status == StatusFiring {
				status = StatusFiring
			}
		}
		group := map[string]string{"alertname": name}
		out = append(out, WebhookMessage{
			Version: "4", GroupKey: fmt.Sprintf("{}:{alertname=%q}", name), Status: status,
			Receiver: receiver, GroupLabels: group,
			CommonLabels: common(alerts, func(a WebhookAlert) map[string]string { return a.Labels }),
			CommonAnnotations: common(alerts, func(a WebhookAlert) map[string]string {
				return a.Annotations
			}),
			ExternalURL: externalURL, Alerts: alerts,
		})
	}
	return out
}

// common returns the pairs every alert shares.
func common(alerts []WebhookAlert, get func(WebhookAlert) map[string]string) map[string]string {
	out := map[string]string{}
	if len(alerts) == 0 {
		return out
	}
	keys := make([]string, 0)
	for k := range get(alerts[0]) {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := get(alerts[0])[k]
		same := true
		for _, a := range alerts[1:] {
			if get(a)[k] != v {
				same = false
				break
			}
		}
		if same {
			out[k] = v
		}
	}
	return out
}
