package jirasim

import (
	"net/http"
	"strings"
)

func (s *Server) routesInit() {
	s.mux = http.NewServeMux()
	s.routesAuth()
	s.routesGroups()
	s.routesIssues()
	s.routesSearch()
	s.routesComments()
	s.routesProjects()
	s.routesAttachments()
	s.routesRelations()
	s.routesWebhooks()
	s.routesAdmin()
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.count(r)
		if strings.HasPrefix(r.URL.Path, "/rest/") {
			writeError(w, errMsg(404, "null for uri: "+baseURL(r)+r.URL.RequestURI()))
			return
		}
		http.NotFound(w, r)
	})
}

func (s *Server) routesProjects() {
	s.route("GET /rest/api/2/serverInfo", true, func(c *reqCtx) error {
		writeJSON(c.w, 200, map[string]any{"baseUrl": c.base, "version": s.opts.Version, "versionNumbers": versionNumbers(s.opts.Version),
			"deploymentType": "Server", "buildNumber": 912002, "buildDate": "2024-01-01T00:00:00.000+0000",
			"serverTime": fmtTime(s.now()), "scmInfo": "jirasim", "serverTitle": "jirasim"})
		return nil
	})
	s.route("POST /rest/api/2/project", false, func(c *reqCtx) error {
		if !c.user.isSysadmin() {
			return errMsg(403, "You must have global administrator rights in order to create projects.")
		}
		var in struct {
			Key, Name, Lead, LeadAccountID, ProjectTypeKey, Description, Workflow string
		}
		if err := decode(c.r, &in); err != nil {
			return err
		}
		p, err := s.createProject(ProjectSpec{Key: in.Key, Name: in.Name, Lead: in.Lead, TypeKey: in.ProjectTypeKey,
			Description: in.Description, Workflow: in.Workflow})
		if err != nil {
			return err
		}
		c.dirty = true
		writeJSON(c.w, 201, map[string]any{"self": c.base + "/rest/api/2/project/" + idStr(p.ID), "id": p.ID, "key": p.Key})
		return nil
	})
	s.route("GET /rest/api/2/project", false, func(c *reqCtx) error {
		out := []any{}
		for _, k := range sortedKeys(s.st.Projects) {
			p := s.st.Projects[k]
			if s.hasPerm(c.user, p, permBrowse, nil) {
				m := s.projectRef(c.base, p)
				m["expand"] = "description,lead,url,projectKeys"
				out = append(out, m)
			}
		}
		writeJSON(c.w, 200, out)
		return nil
	})
	s.route("GET /rest/api/2/project/{key}", false, func(c *reqCtx) error {
		p, err := s.projectFor(c)
		if err != nil {
			return err
		}
		m := s.projectRef(c.base, p)
		m["expand"] = "description,lead,issueTypes,url,projectKeys,permissions"
		m["description"] = p.Desc
		m["lead"] = s.userJSON(c, p.Lead)
		m["components"] = []any{}
		m["versions"] = []any{}
		m["assigneeType"] = "UNASSIGNED"
		m["archived"] = false
		types := []any{}
		for _, t := range issueTypes {
			types = append(types, issueTypeJSON(c.base, t.ID))
		}
		m["issueTypes"] = types
		roles := map[string]string{}
		for name, id := range roleIDs {
			roles[name] = c.base + "/rest/api/2/project/" + idStr(p.ID) + "/role/" + id
		}
		m["roles"] = roles
		writeJSON(c.w, 200, m)
		return nil
	})
	s.route("GET /rest/api/2/project/{key}/statuses", false, func(c *reqCtx) error {
		p, err := s.projectFor(c)
		if err != nil {
			return err
		}
		wf := s.st.Workflows[p.Workflow]
		out := []any{}
		for _, t := range issueTypes {
			sts := []any{}
			for _, id := range wf.Statuses {
				sts = append(sts, s.statusJSON(c.base, id))
			}
			out = append(out, map[string]any{"self": c.base + "/rest/api/2/issuetype/" + t.ID, "id": t.ID, "name": t.Name,
				"subtask": t.Subtask, "statuses": sts})
		}
		writeJSON(c.w, 200, out)
		return nil
	})
	s.route("GET /rest/api/2/project/{key}/role", false, func(c *reqCtx) error {
		p, err := s.projectFor(c)
		if err != nil {
			return err
		}
		roles := map[string]string{}
		for name, id := range roleIDs {
			roles[name] = c.base + "/rest/api/2/project/" + idStr(p.ID) + "/role/" + id
		}
		writeJSON(c.w, 200, roles)
		return nil
	})
	s.route("GET /rest/api/2/project/{key}/role/{id}", false, func(c *reqCtx) error {
		p, err := s.projectFor(c)
		if err != nil {
			return err
		}
		name := roleName(c.r.PathValue("id"))
		if name == "" {
			return errMsg(404, "Cannot find project role with id '"+c.r.PathValue("id")+"'.")
		}
		writeJSON(c.w, 200, s.roleJSON(c, p, name))
		return nil
	})
	s.route("POST /rest/api/2/project/{key}/role/{id}", false, func(c *reqCtx) error {
		p, err := s.projectFor(c)
		if err != nil {
			return err
		}
		if !s.hasPerm(c.user, p, permAdminProject, nil) && !c.user.isSysadmin() {
			return errMsg(403, permMessage(permAdminProject))
		}
		name := roleName(c.r.PathValue("id"))
		if name == "" {
			return errMsg(404, "Cannot find project role with id '"+c.r.PathValue("id")+"'.")
		}
		var in struct {
			User  []string `json:"user"`
			Group []string `json:"group"`
		}
		if err := decode(c.r, &in); err != nil {
			return err
		}
		for _, u := range in.User {
			if s.lookupUser(u) == nil {
				return errMsg(400, "We can't find '"+u+"' in any accessible user directory. Check they're still active and available, and try again.")
			}
		}
		for _, u := range in.User {
			ref := "user:" + s.lookupUser(u).Name
			if !containsStr(p.Roles[name], ref) {
				p.Roles[name] = append(p.Roles[name], ref)
			}
		}
		for _, g := range in.Group {
			if !containsStr(p.Roles[name], "group:"+g) {
				p.Roles[name] = append(p.Roles[name], "group:"+g)
			}
		}
		c.dirty = true
		writeJSON(c.w, 200, s.roleJSON(c, p, name))
		return nil
	})
	s.route("GET /rest/api/2/field", false, func(c *reqCtx) error {
		out := []any{}
		for _, id := range sortedKeys(systemFieldNames) {
			out = append(out, map[string]any{"id": id, "name": systemFieldNames[id], "custom": false, "orderable": true,
				"navigable": true, "searchable": true, "clauseNames": []string{id}, "schema": s.fieldSchema(id)})
		}
		for _, id := range sortedKeys(s.st.Fields) {
			cf := s.st.Fields[id]
			num := strings.TrimPrefix(id, "customfield_")
			out = append(out, map[string]any{"id": id, "name": cf.Name, "custom": true, "orderable": true, "navigable": true,
				"searchable": true, "clauseNames": []string{"cf[" + num + "]", cf.Name}, "schema": s.fieldSchema(id)})
		}
		writeJSON(c.w, 200, out)
		return nil
	})
	s.route("POST /rest/api/2/field", false, func(c *reqCtx) error {
		if !c.user.isSysadmin() {
			return errMsg(403, "Only Jira administrators can create custom fields.")
		}
		var in struct {
			Name, Description, Type, SearcherKey string
			Options                              []string `json:"options"`
		}
		if err := decode(c.r, &in); err != nil {
			return err
		}
		f, err := s.createField(FieldSpec{Name: in.Name, Type: in.Type, Description: in.Description, Options: in.Options})
		if err != nil {
			return err
		}
		c.dirty = true
		writeJSON(c.w, 201, map[string]any{"id": f.ID, "name": f.Name, "custom": true, "orderable": true, "navigable": true,
			"searchable": true, "clauseNames": []string{"cf[" + strings.TrimPrefix(f.ID, "customfield_") + "]", f.Name},
			"schema": s.fieldSchema(f.ID)})
		return nil
	})
	s.route("GET /rest/api/2/customFields/{id}/options", false, func(c *reqCtx) error {
		cf := s.st.Fields[c.r.PathValue("id")]
		if cf == nil {
			return errMsg(404, "Custom field with id '"+c.r.PathValue("id")+"' does not exist.")
		}
		vals := []any{}
		for _, o := range cf.Options {
			vals = append(vals, map[string]any{"id": o.ID, "value": o.Value, "disabled": false})
		}
		writeJSON(c.w, 200, map[string]any{"maxResults": len(vals), "startAt": 0, "total": len(vals), "isLast": true, "values": vals})
		return nil
	})
	s.route("GET /rest/api/2/customFieldOption/{id}", false, func(c *reqCtx) error {
		for _, cf := range s.st.Fields {
			for _, o := range cf.Options {
				if o.ID == c.r.PathValue("id") {
					writeJSON(c.w, 200, map[string]any{"self": c.base + "/rest/api/2/customFieldOption/" + o.ID, "value": o.Value, "id": o.ID})
					return nil
				}
			}
		}
		return errMsg(404, "Custom field option with id '"+c.r.PathValue("id")+"' does not exist.")
	})
	s.route("GET /rest/api/2/priority", false, func(c *reqCtx) error {
		out := []any{}
		for _, p := range priorities {
			m := priorityJSON(c.base, p.ID).(map[string]any)
			m["description"], m["statusColor"] = p.Desc, p.Color
			out = append(out, m)
		}
		writeJSON(c.w, 200, out)
		return nil
	})
	s.route("GET /rest/api/2/resolution", false, func(c *reqCtx) error {
		out := []any{}
		for _, r := range resolutions {
			out = append(out, resolutionJSON(c.base, r.ID))
		}
		writeJSON(c.w, 200, out)
		return nil
	})
	s.route("GET /rest/api/2/status", false, func(c *reqCtx) error {
		out := []any{}
		for _, st := range statuses {
			out = append(out, s.statusJSON(c.base, st.ID))
		}
		writeJSON(c.w, 200, out)
		return nil
	})
	s.route("GET /rest/api/2/issuetype", false, func(c *reqCtx) error {
		out := []any{}
		for _, t := range issueTypes {
			out = append(out, issueTypeJSON(c.base, t.ID))
		}
		writeJSON(c.w, 200, out)
		return nil
	})
	s.route("GET /rest/api/2/statuscategory", false, func(c *reqCtx) error {
		out := []any{}
		for _, id := range []int{1, 2, 4, 3} {
			cat := categories[id]
			out = append(out, map[string]any{"self": c.base + "/rest/api/2/statuscategory/" + idStr(int64(id)), "id": id,
				"key": cat.Key, "colorName": cat.Color, "name": cat.Name})
		}
		writeJSON(c.w, 200, out)
		return nil
	})
}

func versionNumbers(v string) []int {
	out := []int{}
	for _, p := range strings.Split(v, ".") {
		n := 0
		for _, ch := range p {
			if ch >= '0' && ch <= '9' {
				n = n*10 + int(ch-'0')
			}
		}
		out = append(out, n)
	}
	return out
}

func (s *Server) projectFor(c *reqCtx) (*project, error) {
	k := c.r.PathValue("key")
	p := s.projectByID(k)
	if p == nil || !s.hasPerm(c.user, p, permBrowse, nil) {
		return nil, errMsg(404, "No project could be found with key '"+k+"'.")
	}
	return p, nil
}

func roleName(id string) string {
	for name, rid := range roleIDs {
		if rid == id {
			return name
		}
	}
	return ""
}

func (s *Server) roleJSON(c *reqCtx, p *project, name string) map[string]any {
	actors := []any{}
	for i, m := range p.Roles[name] {
		if g, ok := strings.CutPrefix(m, "group:"); ok {
			actors = append(actors, map[string]any{"id": 10000 + i, "displayName": g, "type": "atlassian-group-role-actor", "name": g})
		} else if u := s.lookupUser(strings.TrimPrefix(m, "user:")); u != nil {
			actors = append(actors, map[string]any{"id": 10000 + i, "displayName": u.DisplayName, "type": "atlassian-user-role-actor", "name": u.Name})
		}
	}
	return map[string]any{"self": c.base + "/rest/api/2/project/" + idStr(p.ID) + "/role/" + roleIDs[name], "name": name,
		"id": roleIDs[name], "description": "", "actors": actors}
}

func containsStr(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
