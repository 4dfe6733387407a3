package jirasim

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// Fault makes matching requests fail (or slow down) on purpose.
type Fault struct {
	// Method matches the request method; empty matches any.
	Method string `json:"method,omitempty"`
	// Path matches the URL path: exact, or a path.Match glob
	// ("/rest/api/2/issue/*"), or a prefix ending in "/**" ("/rest/api/2/**").
	Path string `json:"path"`
	// Status is the response status: 429, 500, 503, ...; 0 with Latency
	// only delays the request and then serves it normally.
	Status int `json:"status,omitempty"`
	// RetryAfter is sent as Retry-After (seconds) with a 429 or 503.
	RetryAfter int `json:"retryAfter,omitempty"`
	// Latency is added before answering.
	Latency time.Duration `json:"latency,omitempty"`
	// Times limits how many requests the fault hits; 0 means every request.
	Times int `json:"times,omitempty"`
}

type faultRule struct {
	Fault
	ID   int `json:"id"`
	Hits int `json:"hits"`
}

// RateLimit configures a token bucket like Data Center's rate limiting:
// Capacity tokens, refilled at FillRate tokens per Interval per user.
// Refill follows Options.Now, so a test with a fixed clock advances it to
// let tokens come back.
type RateLimit struct {
	Capacity int           `json:"capacity"`
	FillRate int           `json:"fillRate"`
	Interval time.Duration `json:"interval"`
}

type tokenBucket struct {
	RateLimit
	tokens map[string]float64
	last   map[string]time.Time
}

// AddFault installs a fault and returns its id for RemoveFault.
func (s *Server) AddFault(f Fault) int {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	id := 1
	for _, r := range s.faults {
		id = max(id, r.ID+1)
	}
	s.faults = append(s.faults, &faultRule{Fault: f, ID: id})
	return id
}

// RemoveFault removes one fault.
func (s *Server) RemoveFault(id int) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	for i, r := range s.faults {
		if r.ID == id {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
			return
		}
	}
}

// ClearFaults removes every fault and the rate limit.
func (s *Server) ClearFaults() {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = nil
	s.bucket = nil
}

// SetRateLimit turns on a per-user token bucket; a zero Capacity turns it off.
func (s *Server) SetRateLimit(rl RateLimit) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if rl.Capacity <= 0 {
		s.bucket = nil
		return
	}
	if rl.FillRate <= 0 {
		rl.FillRate = 1
	}
	if rl.Interval <= 0 {
		rl.Interval = time.Second
	}
	s.bucket = &tokenBucket{RateLimit: rl, tokens: map[string]float64{}, last: map[string]time.Time{}}
}

// Counters returns request counts keyed "METHOD /path" (the actual path).
func (s *Server) Counters() map[string]int {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	out := make(map[string]int, len(s.counters))
	for k, v := range s.counters {
		out[k] = v
	}
	return out
}

// RouteCounters returns request counts keyed by route pattern, such as
// "GET /rest/api/2/issue/{key}", to count calls per kind of endpoint.
func (s *Server) RouteCounters() map[string]int {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	out := make(map[string]int, len(s.routes))
	for k, v := range s.routes {
		out[k] = v
	}
	return out
}

// ResetCounters zeroes every counter.
func (s *Server) ResetCounters() {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.counters = map[string]int{}
	s.routes = map[string]int{}
}

func (s *Server) count(r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_jirasim/") {
		return
	}
	p := r.Pattern
	if p == "" {
		// A faulted request never reached the mux: ask it for the route.
		_, p = s.mux.Handler(r)
	}
	if p == "" || p == "/" {
		p = r.Method + " (unrouted)"
	}
	p = strings.Replace(p, "/_createmeta/", "/issue/createmeta/", 1)
	s.faultMu.Lock()
	s.counters[r.Method+" "+origPath(r)]++
	s.routes[p]++
	s.faultMu.Unlock()
}

func faultMatches(f Fault, r *http.Request) bool {
	if f.Method != "" && !strings.EqualFold(f.Method, r.Method) {
		return false
	}
	p := origPath(r)
	switch {
	case f.Path == "" || f.Path == p:
		return true
	case strings.HasSuffix(f.Path, "/**"):
		return strings.HasPrefix(p, strings.TrimSuffix(f.Path, "**"))
	}
	ok, _ := path.Match(f.Path, p)
	return ok
}

// applyFaults answers the request itself when a fault or the rate limit
// says so; it returns true when the request is done.
func (s *Server) applyFaults(w http.ResponseWriter, r *http.Request) bool {
	s.faultMu.Lock()
	var hit *faultRule
	for _, f := range s.faults {
		if (f.Times == 0 || f.Hits < f.Times) && faultMatches(f.Fault, r) {
			f.Hits++
			hit = f
			break
		}
	}
	limited, retry, remaining, b := false, 0, 0, s.bucket
	var rl RateLimit
	if b != nil {
		rl = b.RateLimit
		key := "anonymous"
		if u, _, ok := r.BasicAuth(); ok {
			key = strings.ToLower(u)
		} else if h := r.Header.Get("Authorization"); h != "" {
			key = h
		}
		now := s.opts.Now()
		tokens, seen := b.tokens[key]
		if !seen {
			tokens = float64(rl.Capacity)
		} else {
			elapsed := now.Sub(b.last[key])
			tokens = math.Min(float64(rl.Capacity), tokens+float64(rl.FillRate)*float64(elapsed)/float64(rl.Interval))
		}
		b.last[key] = now
		if tokens >= 1 {
			tokens--
		} else {
			limited = true
			need := (1 - tokens) / float64(rl.FillRate) * rl.Interval.Seconds()
			retry = int(math.Ceil(need))
		}
		b.tokens[key] = tokens
		remaining = int(tokens)
	}
	s.faultMu.Unlock()
	if b != nil {
		w.Header().Set("X-RateLimit-Limit", strconv.Itoa(rl.Capacity))
		w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
		w.Header().Set("X-RateLimit-FillRate", strconv.Itoa(rl.FillRate))
		w.Header().Set("X-RateLimit-Interval-Seconds", strconv.Itoa(int(rl.Interval.Seconds())))
	}
	if limited {
		s.count(r)
		w.Header().Set("Retry-After", strconv.Itoa(max(retry, 1)))
		writeError(w, errMsg(429, "Rate limit exceeded."))
		return true
	}
	if hit == nil {
		return false
	}
	if hit.Latency > 0 {
		select {
		case <-time.After(hit.Latency):
		case <-r.Context().Done():
			return true
		}
	}
	if hit.Status == 0 {
		return false
	}
	s.count(r)
	if hit.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(hit.RetryAfter))
	}
	if hit.Status == 429 {
		if w.Header().Get("X-RateLimit-Limit") == "" {
			w.Header().Set("X-RateLimit-Limit", "100")
			w.Header().Set("X-RateLimit-FillRate", "10")
			w.Header().Set("X-RateLimit-Interval-Seconds", "1")
		}
		w.Header().Set("X-RateLimit-Remaining", "0")
		if hit.RetryAfter == 0 {
			w.Header().Set("Retry-After", "1")
		}
		writeError(w, errMsg(429, "Rate limit exceeded."))
		return true
	}
	writeError(w, errMsg(hit.Status, fmt.Sprintf("jirasim injected fault: %d %s", hit.Status, http.StatusText(hit.Status))))
	return true
}

// routesAdmin serves /_jirasim/: the Go API over HTTP for trying things by
// hand. It requires a Jira administrator.
func (s *Server) routesAdmin() {
	admin := func(h handler) handler {
		return func(c *reqCtx) error {
			if !c.user.isSysadmin() {
				return errMsg(403, "jirasim admin endpoints need a Jira administrator.")
			}
			return h(c)
		}
	}
	s.route("GET /_jirasim/faults", false, admin(func(c *reqCtx) error {
		s.faultMu.Lock()
		defer s.faultMu.Unlock()
		out := []any{}
		for _, f := range s.faults {
			out = append(out, f)
		}
		writeJSON(c.w, 200, out)
		return nil
	}))
	s.route("POST /_jirasim/faults", false, admin(func(c *reqCtx) error {
		var in struct {
			Fault
			Latency string `json:"latency"`
		}
		if err := decode(c.r, &in); err != nil {
			return err
		}
		f := in.Fault
		if in.Latency != "" {
			d, err := time.ParseDuration(in.Latency)
			if err != nil {
				return errField(400, "latency", "latency must be a Go duration such as 250ms")
			}
			f.Latency = d
		}
		writeJSON(c.w, 201, map[string]int{"id": s.AddFault(f)})
		return nil
	}))
	s.route("DELETE /_jirasim/faults/{id}", false, admin(func(c *reqCtx) error {
		id, _ := strconv.Atoi(c.r.PathValue("id"))
		s.RemoveFault(id)
		c.w.WriteHeader(204)
		return nil
	}))
	s.route("DELETE /_jirasim/faults", false, admin(func(c *reqCtx) error {
		s.ClearFaults()
		c.w.WriteHeader(204)
		return nil
	}))
	s.route("PUT /_jirasim/ratelimit", false, admin(func(c *reqCtx) error {
		var in struct {
			Capacity, FillRate int
			Interval           string
		}
		if err := decode(c.r, &in); err != nil {
			return err
		}
		iv := time.Second
		if in.Interval != "" {
			d, err := time.ParseDuration(in.Interval)
			if err != nil {
				return errField(400, "interval", "interval must be a Go duration such as 1s")
			}
			iv = d
		}
		s.SetRateLimit(RateLimit{Capacity: in.Capacity, FillRate: in.FillRate, Interval: iv})
		c.w.WriteHeader(204)
		return nil
	}))
	s.route("GET /_jirasim/counters", false, admin(func(c *reqCtx) error {
		writeJSON(c.w, 200, map[string]any{"paths": s.Counters(), "routes": s.RouteCounters()})
		return nil
	}))
	s.route("DELETE /_jirasim/counters", false, admin(func(c *reqCtx) error {
		s.ResetCounters()
		c.w.WriteHeader(204)
		return nil
	}))
	s.route("DELETE /_jirasim/captcha/{user}", false, admin(func(c *reqCtx) error {
		u := s.lookupUser(c.r.PathValue("user"))
		if u == nil {
			return errMsg(404, "The user named '"+c.r.PathValue("user")+"' does not exist")
		}
		u.Failures, u.Captcha = 0, false
		c.dirty = true
		c.w.WriteHeader(204)
		return nil
	}))
	s.route("PUT /_jirasim/projects/{key}/permissions/{perm}", false, admin(func(c *reqCtx) error {
		p := s.st.Projects[c.r.PathValue("key")]
		if p == nil {
			return errMsg(404, "No project could be found with key '"+c.r.PathValue("key")+"'.")
		}
		if _, ok := permissionNames[c.r.PathValue("perm")]; !ok {
			return errMsg(400, "Could not find permission with the key: "+c.r.PathValue("perm"))
		}
		var holders []string
		if err := decode(c.r, &holders); err != nil {
			return err
		}
		p.Perms[c.r.PathValue("perm")] = holders
		c.dirty = true
		c.w.WriteHeader(204)
		return nil
	}))
	s.route("PUT /_jirasim/projects/{key}/screen", false, admin(func(c *reqCtx) error {
		p := s.st.Projects[c.r.PathValue("key")]
		if p == nil {
			return errMsg(404, "No project could be found with key '"+c.r.PathValue("key")+"'.")
		}
		var ids []string
		if err := decode(c.r, &ids); err != nil {
			return err
		}
		if len(ids) == 0 {
			ids = nil
		}
		p.Screen = ids
		c.dirty = true
		c.w.WriteHeader(204)
		return nil
	}))
	s.route("GET /_jirasim/state", false, admin(func(c *reqCtx) error {
		b, err := json.Marshal(s.st)
		if err != nil {
			return err
		}
		c.w.Header().Set("Content-Type", "application/json")
		_, _ = c.w.Write(b)
		return nil
	}))
}
