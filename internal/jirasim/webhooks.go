package jirasim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// hookEvent is one webhook POST, rendered while the state lock is held and
// sent after it is released.
type hookEvent struct {
	url  string
	body []byte
}

// fire renders the webhook payload of an event for every matching webhook.
// Called with s.mu held.
func (s *Server) fire(c *reqCtx, is *issue, event, typeName string, h *history, cm *comment) {
	if len(s.st.Webhooks) == 0 {
		return
	}
	var payload map[string]any
	for _, id := range sortedKeys(s.st.Webhooks) {
		wh := s.st.Webhooks[id]
		if !wh.Enabled || !slices.Contains(wh.Events, event) {
			continue
		}
		if wh.JQL != "" {
			q, err := s.parseJQL(c, wh.JQL)
			if err != nil {
				continue
			}
			if ok, err := q.Match(issueDoc{s, c, is}); err != nil || !ok {
				continue
			}
		}
		if payload == nil {
			payload = map[string]any{"timestamp": s.now().UnixMilli(), "webhookEvent": event, "user": s.userBean(c.base, c.user)}
			if strings.HasPrefix(event, "jira:") {
				payload["issue_event_type_name"] = typeName
			}
			ij := s.issueJSONFields(c, is, "", nil)
			delete(ij, "expand")
			payload["issue"] = ij
			if h != nil {
				payload["changelog"] = map[string]any{"id": idStr(h.ID), "items": h.Items}
			}
			if cm != nil {
				payload["comment"] = s.commentJSON(c, cm, false)
			}
		}
		body := []byte("{}")
		if !wh.ExclBody {
			body, _ = json.Marshal(payload)
		}
		u := strings.NewReplacer("${issue.key}", is.Key, "${issue.id}", idStr(is.ID),
			"${project.key}", is.Project, "${project.id}", idStr(s.st.Projects[is.Project].ID)).Replace(wh.URL)
		c.events = append(c.events, hookEvent{url: u, body: body})
	}
}

// dispatch sends webhook events in order, inline with SyncWebhooks, else in
// the background (WaitWebhooks waits for them).
func (s *Server) dispatch(events []hookEvent) {
	if len(events) == 0 {
		return
	}
	send := func() {
		for _, e := range events {
			if s.opts.DeliverWebhook != nil {
				if err := s.opts.DeliverWebhook(context.Background(), e.url, e.body); err != nil {
					s.log.Warn("webhook delivery", "url", e.url, "err", err)
				}
				continue
			}
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, e.url, bytes.NewReader(e.body))
			if err != nil {
				s.log.Warn("webhook request", "url", e.url, "err", err)
				continue
			}
			req.Header.Set("Content-Type", "application/json; charset=UTF-8")
			req.Header.Set("User-Agent", "Atlassian HttpClient 3.0.4 / JIRA-"+s.opts.Version)
			resp, err := s.opts.WebhookClient.Do(req)
			if err != nil {
				s.log.Warn("webhook delivery", "url", e.url, "err", err)
				continue
			}
			_ = resp.Body.Close()
		}
	}
	if s.opts.SyncWebhooks {
		send()
		return
	}
	s.hooks.Add(1)
	go func() {
		defer s.hooks.Done()
		send()
	}()
}

func (s *Server) webhookJSON(c *reqCtx, wh *webhook) map[string]any {
	return map[string]any{
		"name": wh.Name, "url": wh.URL, "excludeBody": wh.ExclBody, "events": wh.Events, "enabled": wh.Enabled,
		"filters":         map[string]string{"issue-related-events-section": wh.JQL},
		"self":            c.base + "/rest/webhooks/1.0/webhook/" + idStr(wh.ID),
		"lastUpdatedUser": s.st.Users[strings.ToLower(wh.User)].Key, "lastUpdatedDisplayName": s.st.Users[strings.ToLower(wh.User)].DisplayName,
		"lastUpdated": wh.Updated.UnixMilli(),
	}
}

var knownEvents = []string{"jira:issue_created", "jira:issue_updated", "jira:issue_deleted", "comment_created",
	"comment_updated", "comment_deleted"}

func (s *Server) routesWebhooks() {
	adminOnly := func(c *reqCtx) error {
		if !c.user.isSysadmin() {
			return errMsg(403, "You must be a Jira administrator to manage webhooks.")
		}
		return nil
	}
	save := func(c *reqCtx, wh *webhook) error {
		var in struct {
			Name        string            `json:"name"`
			URL         string            `json:"url"`
			Events      []string          `json:"events"`
			Filters     map[string]string `json:"filters"`
			JQLFilter   string            `json:"jqlFilter"`
			ExcludeBody bool              `json:"excludeBody"`
			Enabled     *bool             `json:"enabled"`
		}
		if err := decode(c.r, &in); err != nil {
			return err
		}
		ae := &apiError{status: 400, fields: map[string]string{}}
		if in.Name == "" {
			ae.messages = append(ae.messages, "Name is required.")
		}
		if !strings.HasPrefix(in.URL, "http://") && !strings.HasPrefix(in.URL, "https://") {
			ae.messages = append(ae.messages, "URL must be a valid http or https URL.")
		}
		for _, e := range in.Events {
			if !slices.Contains(knownEvents, e) {
				ae.messages = append(ae.messages, "Event '"+e+"' is not supported.")
			}
		}
		jqlText := in.Filters["issue-related-events-section"]
		if jqlText == "" {
			jqlText = in.JQLFilter
		}
		if jqlText != "" {
			if _, err := s.parseJQL(c, jqlText); err != nil {
				ae.messages = append(ae.messages, "The JQL filter is invalid: "+err.(*apiError).messages[0])
			}
		}
		if len(ae.messages) > 0 {
			return ae
		}
		wh.Name, wh.URL, wh.Events, wh.JQL, wh.ExclBody = in.Name, in.URL, in.Events, jqlText, in.ExcludeBody
		wh.Enabled = in.Enabled == nil || *in.Enabled
		wh.User, wh.Updated = c.user.Name, s.now()
		return nil
	}
	s.route("GET /rest/webhooks/1.0/webhook", false, func(c *reqCtx) error {
		if err := adminOnly(c); err != nil {
			return err
		}
		out := []any{}
		for _, id := range sortedKeys(s.st.Webhooks) {
			out = append(out, s.webhookJSON(c, s.st.Webhooks[id]))
		}
		writeJSON(c.w, 200, out)
		return nil
	})
	s.route("POST /rest/webhooks/1.0/webhook", false, func(c *reqCtx) error {
		if err := adminOnly(c); err != nil {
			return err
		}
		wh := &webhook{}
		if err := save(c, wh); err != nil {
			return err
		}
		wh.ID = s.st.nextID("webhook")
		s.st.Webhooks[wh.ID] = wh
		c.dirty = true
		writeJSON(c.w, 201, s.webhookJSON(c, wh))
		return nil
	})
	s.route("GET /rest/webhooks/1.0/webhook/{id}", false, func(c *reqCtx) error {
		if err := adminOnly(c); err != nil {
			return err
		}
		wh, err := s.webhookFor(c)
		if err != nil {
			return err
		}
		writeJSON(c.w, 200, s.webhookJSON(c, wh))
		return nil
	})
	s.route("PUT /rest/webhooks/1.0/webhook/{id}", false, func(c *reqCtx) error {
		if err := adminOnly(c); err != nil {
			return err
		}
		wh, err := s.webhookFor(c)
		if err != nil {
			return err
		}
		cp := *wh
		if err := save(c, &cp); err != nil {
			return err
		}
		*wh = cp
		c.dirty = true
		writeJSON(c.w, 200, s.webhookJSON(c, wh))
		return nil
	})
	s.route("DELETE /rest/webhooks/1.0/webhook/{id}", false, func(c *reqCtx) error {
		if err := adminOnly(c); err != nil {
			return err
		}
		wh, err := s.webhookFor(c)
		if err != nil {
			return err
		}
		delete(s.st.Webhooks, wh.ID)
		c.dirty = true
		c.w.WriteHeader(204)
		return nil
	})
}

func (s *Server) webhookFor(c *reqCtx) (*webhook, error) {
	id, _ := strconv.ParseInt(c.r.PathValue("id"), 10, 64)
	wh := s.st.Webhooks[id]
	if wh == nil {
		return nil, errMsg(404, "Webhook with id "+c.r.PathValue("id")+" does not exist.")
	}
	return wh, nil
}

func asErr[T error](err error, target *T) bool { return errors.As(err, target) }
