package jirasim

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// authenticate resolves the caller. It returns (nil, nil) for an anonymous
// request. Like Jira's Seraph filter, a wrong password counts towards the
// CAPTCHA limit and, once reached, even the right password is denied.
// Called with s.mu held.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*user, *apiError) {
	h := r.Header.Get("Authorization")
	switch {
	case h == "":
		w.Header().Set("X-AUSERNAME", "anonymous")
		return nil, nil
	case strings.HasPrefix(h, "Bearer "):
		t := s.st.Tokens[strings.TrimSpace(strings.TrimPrefix(h, "Bearer "))]
		if t != nil && (t.Expires.IsZero() || s.now().Before(t.Expires)) {
			if u := s.st.Users[strings.ToLower(t.User)]; u != nil && u.Active {
				w.Header().Set("X-AUSERNAME", u.Name)
				return u, nil
			}
		}
		return nil, authFailed(w)
	}
	name, pass, ok := r.BasicAuth()
	if !ok {
		return nil, authFailed(w)
	}
	u := s.st.Users[strings.ToLower(name)]
	if u == nil || !u.Active {
		return nil, authFailed(w)
	}
	if u.Captcha {
		w.Header().Set("X-Seraph-LoginReason", "AUTHENTICATION_DENIED")
		w.Header().Set("X-Authentication-Denied-Reason", "CAPTCHA_CHALLENGE; login-url="+baseURL(r)+"/login.jsp")
		return nil, &apiError{status: http.StatusForbidden, html: true, plain: seraphPage("403 - Forbidden", "AUTHENTICATION_DENIED")}
	}
	if pass != u.Password {
		u.Failures++
		if s.opts.MaxLoginFailures > 0 && u.Failures >= s.opts.MaxLoginFailures {
			u.Captcha = true
		}
		return nil, authFailed(w)
	}
	u.Failures = 0
	w.Header().Set("X-Seraph-LoginReason", "OK")
	w.Header().Set("X-AUSERNAME", u.Name)
	return u, nil
}

func authFailed(w http.ResponseWriter) *apiError {
	w.Header().Set("X-Seraph-LoginReason", "AUTHENTICATED_FAILED")
	w.Header().Set("WWW-Authenticate", `Basic realm="protected-area"`)
	return &apiError{status: http.StatusUnauthorized, html: true, plain: seraphPage("401 - Unauthorized", "AUTHENTICATED_FAILED")}
}

// seraphPage is the HTML error page Jira's login filter answers REST calls
// with when basic authentication fails.
func seraphPage(title, reason string) string {
	return "<html><head><title>" + title + "</title></head><body><h1>" + title + "</h1>" +
		"<p>Encountered a \"" + title + "\" error while loading this page.</p>" +
		"<p>Basic Authentication Failure - Reason : " + reason + "</p></body></html>"
}

func (u *user) isSysadmin() bool {
	return slices.Contains(u.Groups, "jira-administrators")
}

func (u *user) inGroup(g string) bool {
	return slices.Contains(u.Groups, g)
}

// inRole reports whether u is in the project role, directly or by group.
func (p *project) inRole(u *user, role string) bool {
	for _, m := range p.Roles[role] {
		if m == "user:"+u.Name || (strings.HasPrefix(m, "group:") && u.inGroup(strings.TrimPrefix(m, "group:"))) {
			return true
		}
	}
	return false
}

// hasPerm evaluates the project's permission scheme for u. is (optional)
// lets "reporter" and "assignee" grants apply.
func (s *Server) hasPerm(u *user, p *project, perm string, is *issue) bool {
	if u == nil || p == nil {
		return false
	}
	for _, h := range p.Perms[perm] {
		switch {
		case h == "loggedin" || h == "anyone":
			return true
		case h == "reporter":
			if is != nil && is.Reporter == u.Name {
				return true
			}
		case h == "assignee":
			if is != nil && is.Assignee == u.Name {
				return true
			}
		case strings.HasPrefix(h, "role:"):
			if p.inRole(u, strings.TrimPrefix(h, "role:")) {
				return true
			}
		case strings.HasPrefix(h, "group:"):
			if u.inGroup(strings.TrimPrefix(h, "group:")) {
				return true
			}
		case strings.HasPrefix(h, "user:"):
			if strings.EqualFold(strings.TrimPrefix(h, "user:"), u.Name) {
				return true
			}
		}
	}
	return false
}

// need returns Jira's 403 when the caller lacks perm on the issue's project.
func (s *Server) need(c *reqCtx, is *issue, perm string) error {
	p := s.st.Projects[is.Project]
	if s.hasPerm(c.user, p, perm, is) {
		return nil
	}
	return errMsg(http.StatusForbidden, permMessage(perm))
}

func permMessage(perm string) string {
	switch perm {
	case permEdit:
		return "You do not have permission to edit issues in this project."
	case permTransition:
		return "You do not have permission to transition this issue."
	case permAddComments:
		return "You do not have the permission to comment on this issue."
	case permCreateAttach:
		return "You do not have permission to create attachments for this issue."
	case permCreate:
		return "You do not have permission to create issues in this project."
	case permLink:
		return "No Link Issue Permission for issue."
	case permManageWatchers:
		return "User does not have permission to manage watchers of this issue."
	case permDelete:
		return "You do not have permission to delete issues in this project."
	case permAdminProject:
		return "You cannot edit the configuration of this project."
	}
	return "You do not have the permission to perform this operation (" + perm + ")."
}

// userJSON is Jira's user bean.
func (s *Server) userJSON(c *reqCtx, name string) any {
	u := s.st.Users[strings.ToLower(name)]
	if u == nil {
		if name == "" {
			return nil
		}
		return map[string]any{"name": name, "key": name, "displayName": name, "active": false}
	}
	return s.userBean(c.base, u)
}

func (s *Server) userBean(base string, u *user) map[string]any {
	av := base + "/secure/useravatar?avatarId=10122"
	return map[string]any{
		"self":         base + "/rest/api/2/user?username=" + u.Name,
		"key":          u.Key,
		"name":         u.Name,
		"emailAddress": u.Email,
		"avatarUrls": map[string]string{
			"48x48": av, "24x24": av + "&size=small", "16x16": av + "&size=xsmall", "32x32": av + "&size=medium",
		},
		"displayName": u.DisplayName,
		"active":      u.Active,
		"timeZone":    s.opts.Location.String(),
	}
}

func (s *Server) lookupUser(name string) *user {
	return s.st.Users[strings.ToLower(name)]
}

func randomToken() string {
	b := make([]byte, 33)
	_, _ = rand.Read(b)
	return base64.RawStdEncoding.EncodeToString(b)
}

func (s *Server) routesAuth() {
	s.route("GET /rest/api/2/myself", false, func(c *reqCtx) error {
		b := s.userBean(c.base, c.user)
		groups := []map[string]string{}
		for _, g := range c.user.Groups {
			groups = append(groups, map[string]string{"name": g, "self": c.base + "/rest/api/2/group?groupname=" + g})
		}
		b["groups"] = map[string]any{"size": len(groups), "items": groups}
		b["locale"] = "en_US"
		b["expand"] = "groups,applicationRoles"
		writeJSON(c.w, 200, b)
		return nil
	})
	s.route("GET /rest/api/2/user", false, func(c *reqCtx) error {
		name := c.r.URL.Query().Get("username")
		if name == "" {
			name = c.r.URL.Query().Get("key")
		}
		u := s.lookupUser(name)
		if u == nil {
			for _, x := range s.st.Users {
				if x.Key == name {
					u = x
				}
			}
		}
		if u == nil {
			return errMsg(404, "The user named '"+name+"' does not exist")
		}
		writeJSON(c.w, 200, s.userBean(c.base, u))
		return nil
	})
	s.route("GET /rest/api/2/user/search", false, func(c *reqCtx) error {
		q := strings.ToLower(c.r.URL.Query().Get("username"))
		if q == "" {
			return errField(400, "username", "The username query parameter was not provided")
		}
		out := []any{}
		for _, name := range sortedKeys(s.st.Users) {
			u := s.st.Users[name]
			if q == "." || strings.HasPrefix(strings.ToLower(u.Name), q) || strings.Contains(strings.ToLower(u.DisplayName), q) ||
				strings.HasPrefix(strings.ToLower(u.Email), q) {
				out = append(out, s.userBean(c.base, u))
			}
		}
		start, max := pageParams(c.r, 50, 1000)
		writeJSON(c.w, 200, page(out, start, max))
		return nil
	})
	s.route("POST /rest/api/2/user", false, func(c *reqCtx) error {
		if !c.user.isSysadmin() {
			return errMsg(403, "You must have global administrator rights in order to modify users.")
		}
		var in struct {
			Name, Password, EmailAddress, DisplayName string
		}
		if err := decode(c.r, &in); err != nil {
			return err
		}
		if err := s.createUser(UserSpec{Name: in.Name, Password: in.Password, Email: in.EmailAddress, DisplayName: in.DisplayName}); err != nil {
			return err
		}
		c.dirty = true
		writeJSON(c.w, 201, s.userBean(c.base, s.lookupUser(in.Name)))
		return nil
	})
	s.route("PUT /rest/api/2/user/password", false, func(c *reqCtx) error {
		name := c.r.URL.Query().Get("username")
		u := s.lookupUser(name)
		if u == nil {
			return errMsg(404, "The user named '"+name+"' does not exist")
		}
		var in struct {
			Password        string `json:"password"`
			CurrentPassword string `json:"currentPassword"`
		}
		if err := decode(c.r, &in); err != nil {
			return err
		}
		if !c.user.isSysadmin() && (u != c.user || in.CurrentPassword != u.Password) {
			return errMsg(403, "You do not have the permission to change this user's password.")
		}
		if in.Password == "" {
			return errField(400, "password", "You must specify a password.")
		}
		u.Password, u.Failures, u.Captcha = in.Password, 0, false
		c.dirty = true
		c.w.WriteHeader(204)
		return nil
	})
	s.route("GET /rest/pat/latest/tokens", false, func(c *reqCtx) error {
		out := []any{}
		for _, raw := range sortedKeys(s.st.Tokens) {
			if t := s.st.Tokens[raw]; t.User == c.user.Name {
				out = append(out, map[string]any{"id": t.ID, "name": t.Name, "createdAt": fmtTime(t.Created), "expiringAt": fmtTimeOrNil(t.Expires)})
			}
		}
		writeJSON(c.w, 200, out)
		return nil
	})
	s.route("DELETE /rest/pat/latest/tokens/{id}", false, func(c *reqCtx) error {
		for raw, t := range s.st.Tokens {
			if idStr(t.ID) == c.r.PathValue("id") && (t.User == c.user.Name || c.user.isSysadmin()) {
				delete(s.st.Tokens, raw)
				c.dirty = true
				c.w.WriteHeader(204)
				return nil
			}
		}
		return errMsg(404, "Token with id "+c.r.PathValue("id")+" not found.")
	})
	s.route("POST /rest/pat/latest/tokens", false, func(c *reqCtx) error {
		var in struct {
			Name               string `json:"name"`
			ExpirationDuration int    `json:"expirationDuration"`
		}
		if err := decode(c.r, &in); err != nil {
			return err
		}
		raw, t := s.newToken(c.user.Name, in.Name, in.ExpirationDuration)
		c.dirty = true
		writeJSON(c.w, 201, map[string]any{"id": t.ID, "name": t.Name, "createdAt": fmtTime(t.Created),
			"expiringAt": fmtTimeOrNil(t.Expires), "rawToken": raw})
		return nil
	})
	s.route("GET /rest/api/2/mypermissions", false, func(c *reqCtx) error {
		q := c.r.URL.Query()
		var p *project
		var is *issue
		if k := q.Get("projectKey"); k != "" {
			if p = s.st.Projects[strings.ToUpper(k)]; p == nil {
				return errMsg(404, "No project could be found with key '"+k+"'.")
			}
		} else if id := q.Get("projectId"); id != "" {
			if p = s.projectByID(id); p == nil {
				return errMsg(404, "No project could be found with id '"+id+"'.")
			}
		} else if k := q.Get("issueKey"); k != "" {
			if is = s.findIssue(k); is == nil {
				return errNoIssue()
			}
			p = s.st.Projects[is.Project]
		} else if k := q.Get("issueId"); k != "" {
			if is = s.findIssue(k); is == nil {
				return errNoIssue()
			}
			p = s.st.Projects[is.Project]
		}
		var keys []string
		if ps := q.Get("permissions"); ps != "" {
			for _, k := range strings.Split(ps, ",") {
				k = strings.TrimSpace(k)
				if _, ok := permissionNames[k]; !ok {
					return errMsg(400, "Could not find permission with the key: "+k)
				}
				keys = append(keys, k)
			}
		} else {
			keys = sortedKeys(permissionNames)
		}
		out := map[string]any{}
		for _, k := range keys {
			have := false
			if p != nil {
				have = s.hasPerm(c.user, p, k, is)
			} else {
				for _, pp := range s.st.Projects {
					if s.hasPerm(c.user, pp, k, nil) {
						have = true
					}
				}
			}
			out[k] = map[string]any{"id": permissionIDs[k], "key": k, "name": permissionNames[k], "type": "PROJECT",
				"description": permissionNames[k], "havePermission": have}
		}
		writeJSON(c.w, 200, map[string]any{"permissions": out})
		return nil
	})
}

func (s *Server) newToken(userName, name string, days int) (string, *token) {
	raw := randomToken()
	t := &token{ID: s.st.nextID("token"), Name: name, User: userName, Created: s.now()}
	if days > 0 {
		t.Expires = t.Created.Add(time.Duration(days) * 24 * time.Hour)
	}
	s.st.Tokens[raw] = t
	return raw, t
}

func (s *Server) groupExists(g string) bool {
	if g == "jira-administrators" || g == "jira-software-users" || slices.Contains(s.st.Groups, g) {
		return true
	}
	for _, u := range s.st.Users {
		if u.inGroup(g) {
			return true
		}
	}
	return false
}

// AddToGroup puts a user into a group, creating the group if needed.
func (s *Server) AddToGroup(userName, group string) error {
	defer s.lockForChange()()
	u := s.lookupUser(userName)
	if u == nil {
		return fmt.Errorf("add to group: no user %q", userName)
	}
	if !s.groupExists(group) {
		s.st.Groups = append(s.st.Groups, group)
	}
	if !u.inGroup(group) {
		u.Groups = append(u.Groups, group)
	}
	return nil
}

func (s *Server) routesGroups() {
	s.route("POST /rest/api/2/group", false, func(c *reqCtx) error {
		if !c.user.isSysadmin() {
			return errMsg(403, "You do not have permission to create groups.")
		}
		var in struct{ Name string }
		if err := decode(c.r, &in); err != nil {
			return err
		}
		if in.Name == "" {
			return errField(400, "name", "You must specify a group name.")
		}
		if s.groupExists(in.Name) {
			return errMsg(400, "A group or user with this name already exists.")
		}
		s.st.Groups = append(s.st.Groups, in.Name)
		c.dirty = true
		writeJSON(c.w, 201, map[string]any{"name": in.Name, "self": c.base + "/rest/api/2/group?groupname=" + in.Name,
			"users": map[string]any{"size": 0, "items": []any{}, "max-results": 50, "start-index": 0, "end-index": 0}})
		return nil
	})
	s.route("POST /rest/api/2/group/user", false, func(c *reqCtx) error {
		if !c.user.isSysadmin() {
			return errMsg(403, "You do not have permission to edit groups.")
		}
		g := c.r.URL.Query().Get("groupname")
		if !s.groupExists(g) {
			return errMsg(404, "Specified group does not exist.")
		}
		var in struct{ Name string }
		if err := decode(c.r, &in); err != nil {
			return err
		}
		u := s.lookupUser(in.Name)
		if u == nil {
			return errMsg(404, "The user named '"+in.Name+"' does not exist")
		}
		if u.inGroup(g) {
			return errMsg(400, "Cannot add user. '"+u.Name+"' is already a member of '"+g+"'")
		}
		u.Groups = append(u.Groups, g)
		c.dirty = true
		writeJSON(c.w, 201, map[string]any{"name": g, "self": c.base + "/rest/api/2/group?groupname=" + g})
		return nil
	})
	s.route("DELETE /rest/api/2/group/user", false, func(c *reqCtx) error {
		if !c.user.isSysadmin() {
			return errMsg(403, "You do not have permission to edit groups.")
		}
		g := c.r.URL.Query().Get("groupname")
		u := s.lookupUser(c.r.URL.Query().Get("username"))
		if u == nil || !u.inGroup(g) {
			return errMsg(404, "The user is not a member of the group.")
		}
		u.Groups = slices.DeleteFunc(u.Groups, func(x string) bool { return x == g })
		c.dirty = true
		c.w.WriteHeader(200)
		return nil
	})
	s.route("GET /rest/api/2/group/member", false, func(c *reqCtx) error {
		g := c.r.URL.Query().Get("groupname")
		if !s.groupExists(g) {
			return errMsg(404, "Specified group does not exist.")
		}
		var members []any
		for _, name := range sortedKeys(s.st.Users) {
			if u := s.st.Users[name]; u.inGroup(g) {
				members = append(members, s.userBean(c.base, u))
			}
		}
		start, max := pageParams(c.r, 50, 50)
		writeJSON(c.w, 200, map[string]any{"self": c.base + c.r.URL.RequestURI(), "maxResults": max, "startAt": start,
			"total": len(members), "isLast": start+max >= len(members), "values": page(members, start, max)})
		return nil
	})
}
