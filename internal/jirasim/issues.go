package jirasim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// findIssue resolves an id or key; keys match case-insensitively.
func (s *Server) findIssue(idOrKey string) *issue {
	if id, err := strconv.ParseInt(idOrKey, 10, 64); err == nil {
		return s.st.Issues[id]
	}
	k := strings.ToUpper(idOrKey)
	for _, is := range s.st.Issues {
		if is.Key == k {
			return is
		}
	}
	if id, ok := s.st.KeyAliases[k]; ok {
		return s.st.Issues[id]
	}
	return nil
}

// issueFor finds the issue in the path and checks the caller may browse it
// and holds perm (if any).
func (s *Server) issueFor(c *reqCtx, perm string) (*issue, error) {
	is := s.findIssue(c.r.PathValue("key"))
	if is == nil {
		return nil, errNoIssue()
	}
	if !s.hasPerm(c.user, s.st.Projects[is.Project], permBrowse, is) {
		// Jira does not reveal that an issue exists to someone who may not see it.
		return nil, errNoIssue()
	}
	if perm != "" {
		if err := s.need(c, is, perm); err != nil {
			return nil, err
		}
	}
	return is, nil
}

func expandList(r *http.Request) []string {
	var out []string
	for _, e := range strings.Split(r.URL.Query().Get("expand"), ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// onScreen reports whether a field may be set through create or edit.
func (s *Server) onScreen(p *project, id string, create bool) bool {
	switch id {
	case "summary", "issuetype":
		return true
	case "project", "parent":
		return create
	case "status", "resolution", "resolutiondate", "created", "updated", "creator", "subtasks", "watches",
		"votes", "lastViewed", "attachment", "issuelinks", "worklog", "timetracking":
		return false
	case "comment":
		return !create
	}
	if _, sys := systemFieldNames[id]; !sys && s.st.Fields[id] == nil {
		return false
	}
	if p.Screen == nil {
		return true
	}
	return slices.Contains(p.Screen, id)
}

// hiddenByPerm: Jira leaves reporter and assignee off the screen for users
// without Modify Reporter and Assign Issues, so setting them fails like an
// unknown field.
func (s *Server) hiddenByPerm(c *reqCtx, p *project, id string, is *issue) bool {
	switch id {
	case "reporter":
		return !s.hasPerm(c.user, p, permModifyReporter, is)
	case "assignee":
		return !s.hasPerm(c.user, p, permAssign, is)
	}
	return false
}

func notOnScreen(id string) string {
	return fmt.Sprintf("Field '%s' cannot be set. It is not on the appropriate screen, or unknown.", id)
}

type issueInput struct {
	Fields          map[string]json.RawMessage              `json:"fields"`
	Update          map[string][]map[string]json.RawMessage `json:"update"`
	Properties      []propertyInput                         `json:"properties"`
	HistoryMetadata json.RawMessage                         `json:"historyMetadata"`
	Transition      *struct {
		ID string `json:"id"`
	} `json:"transition"`
}

type propertyInput struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

func (s *Server) routesIssues() {
	s.route("POST /rest/api/2/issue", false, s.createIssue)
	s.route("GET /rest/api/2/issue/{key}", false, func(c *reqCtx) error {
		is, err := s.issueFor(c, "")
		if err != nil {
			return err
		}
		writeJSON(c.w, 200, s.issueJSON(c, is, c.r.URL.Query().Get("fields"), expandList(c.r)))
		return nil
	})
	s.route("PUT /rest/api/2/issue/{key}", false, s.editIssue)
	s.route("DELETE /rest/api/2/issue/{key}", false, func(c *reqCtx) error {
		is, err := s.issueFor(c, permDelete)
		if err != nil {
			return err
		}
		var kids []int64
		for id, ch := range s.st.Issues {
			if ch.Parent == is.ID {
				kids = append(kids, id)
			}
		}
		if len(kids) > 0 && c.r.URL.Query().Get("deleteSubtasks") != "true" {
			return errMsg(400, fmt.Sprintf("The issue '%s' has subtasks.  You must specify the 'deleteSubtasks' parameter to delete this issue and all its subtasks.", is.Key))
		}
		for _, id := range append(kids, is.ID) {
			s.deleteIssue(c, s.st.Issues[id])
		}
		c.dirty = true
		c.w.WriteHeader(204)
		return nil
	})
	s.route("PUT /rest/api/2/issue/{key}/assignee", false, func(c *reqCtx) error {
		is, err := s.issueFor(c, permAssign)
		if err != nil {
			return err
		}
		var ref *struct{ Name string }
		if err := decode(c.r, &ref); err != nil {
			return err
		}
		raw := []byte("null")
		if ref != nil && ref.Name != "" && ref.Name != "-1" {
			raw, _ = json.Marshal(map[string]string{"name": ref.Name})
		}
		items, err := s.setField(c, is, "assignee", "set", raw)
		if err != nil {
			return errField(400, "assignee", err.Error())
		}
		if items = mergeItems(items); len(items) > 0 {
			h := s.addHistory(c, is, items, nil)
			s.fire(c, is, "jira:issue_updated", "issue_assigned", h, nil)
		}
		c.dirty = true
		c.w.WriteHeader(204)
		return nil
	})
	s.route("GET /rest/api/2/issue/{key}/transitions", false, func(c *reqCtx) error {
		is, err := s.issueFor(c, "")
		if err != nil {
			return err
		}
		withFields := slices.Contains(expandList(c.r), "transitions.fields")
		writeJSON(c.w, 200, map[string]any{"expand": "transitions", "transitions": s.transitionsJSON(c, is, withFields)})
		return nil
	})
	s.route("POST /rest/api/2/issue/{key}/transitions", false, s.doTransition)
	s.route("GET /rest/api/2/issue/{key}/editmeta", false, func(c *reqCtx) error {
		is, err := s.issueFor(c, "")
		if err != nil {
			return err
		}
		fields := map[string]any{}
		if s.hasPerm(c.user, s.st.Projects[is.Project], permEdit, is) {
			fields = s.metaFields(c, s.st.Projects[is.Project], is.Type, false)
		}
		writeJSON(c.w, 200, map[string]any{"fields": fields})
		return nil
	})
	if s.opts.LegacyCreateMeta {
		s.route("GET /rest/api/2/issue/createmeta", false, s.createMeta)
	}
	s.route("GET /rest/api/2/_createmeta/{project}/issuetypes", false, s.createMetaTypes)
	s.route("GET /rest/api/2/_createmeta/{project}/issuetypes/{type}", false, s.createMetaFields)

	// Issue properties.
	s.route("GET /rest/api/2/issue/{key}/properties", false, func(c *reqCtx) error {
		is, err := s.issueFor(c, "")
		if err != nil {
			return err
		}
		writeJSON(c.w, 200, propertyKeys(c.base+"/rest/api/2/issue/"+idStr(is.ID)+"/properties/", is.Props))
		return nil
	})
	s.route("GET /rest/api/2/issue/{key}/properties/{prop}", false, func(c *reqCtx) error {
		is, err := s.issueFor(c, "")
		if err != nil {
			return err
		}
		v, ok := is.Props[c.r.PathValue("prop")]
		if !ok {
			return errMsg(404, fmt.Sprintf("The property with key '%s' does not exist.", c.r.PathValue("prop")))
		}
		writeJSON(c.w, 200, map[string]any{"key": c.r.PathValue("prop"), "value": v})
		return nil
	})
	s.route("PUT /rest/api/2/issue/{key}/properties/{prop}", false, func(c *reqCtx) error {
		is, err := s.issueFor(c, permEdit)
		if err != nil {
			return err
		}
		v, err := readPropertyValue(c.r)
		if err != nil {
			return err
		}
		status := setProperty(&is.Props, c.r.PathValue("prop"), v)
		c.dirty = true
		writeJSON(c.w, status, nil)
		return nil
	})
	s.route("DELETE /rest/api/2/issue/{key}/properties/{prop}", false, func(c *reqCtx) error {
		is, err := s.issueFor(c, permEdit)
		if err != nil {
			return err
		}
		k := c.r.PathValue("prop")
		if _, ok := is.Props[k]; !ok {
			return errMsg(404, fmt.Sprintf("The property with key '%s' does not exist.", k))
		}
		delete(is.Props, k)
		c.dirty = true
		c.w.WriteHeader(204)
		return nil
	})
}

func propertyKeys(self string, props map[string]json.RawMessage) map[string]any {
	keys := []any{}
	for _, k := range sortedKeys(props) {
		keys = append(keys, map[string]string{"self": self + k, "key": k})
	}
	return map[string]any{"keys": keys}
}

func readPropertyValue(r *http.Request) (json.RawMessage, error) {
	var v json.RawMessage
	if err := decode(r, &v); err != nil {
		return nil, errMsg(400, "The property value must be a valid JSON.")
	}
	if len(v) > 32768 {
		return nil, errMsg(400, "The property value is too long. The maximum allowed length is 32768.")
	}
	return v, nil
}

// setProperty returns 201 for a new key and 200 for an update, as Jira does.
func setProperty(props *map[string]json.RawMessage, k string, v json.RawMessage) int {
	if *props == nil {
		*props = map[string]json.RawMessage{}
	}
	_, existed := (*props)[k]
	(*props)[k] = v
	if existed {
		return 200
	}
	return 201
}

func validProperties(in []propertyInput) error {
	for _, p := range in {
		if p.Key == "" || len(p.Key) > 255 {
			return errMsg(400, "The property key cannot be null or longer than 255 characters.")
		}
		if len(p.Value) == 0 {
			return errMsg(400, "The property value must be a valid JSON.")
		}
	}
	return nil
}

func (s *Server) deleteIssue(c *reqCtx, is *issue) {
	for id, cm := range s.st.Comments {
		if cm.Issue == is.ID {
			delete(s.st.Comments, id)
		}
	}
	for id, a := range s.st.Attachments {
		if a.Issue == is.ID {
			delete(s.st.Attachments, id)
		}
	}
	for id, l := range s.st.Links {
		if l.Inward == is.ID || l.Outward == is.ID {
			delete(s.st.Links, id)
		}
	}
	s.fire(c, is, "jira:issue_deleted", "issue_deleted", nil, nil)
	delete(s.st.Issues, is.ID)
}

func (s *Server) createIssue(c *reqCtx) error {
	var in issueInput
	if err := decode(c.r, &in); err != nil {
		return err
	}
	is, err := s.buildIssue(c, &in)
	if err != nil {
		return err
	}
	c.dirty = true
	writeJSON(c.w, 201, map[string]any{"id": idStr(is.ID), "key": is.Key, "self": s.issueSelf(c.base, is)})
	return nil
}

func (s *Server) buildIssue(c *reqCtx, in *issueInput) (*issue, error) {
	if in.Fields == nil {
		return nil, errMsg(400, "Can not deserialize instance of com.atlassian.jira.rest.v2.issue.IssueUpdateBean out of START_ARRAY token")
	}
	ae := &apiError{status: 400, fields: map[string]string{}}
	var p *project
	if raw, ok := in.Fields["project"]; ok {
		var ref struct{ ID, Key string }
		_ = json.Unmarshal(raw, &ref)
		if ref.Key != "" {
			p = s.st.Projects[strings.ToUpper(ref.Key)]
		} else if ref.ID != "" {
			p = s.projectByID(ref.ID)
		}
		if p == nil {
			ae.fields["project"] = "valid project is required"
		}
	} else {
		ae.fields["project"] = "project is required"
	}
	if p != nil && !s.hasPerm(c.user, p, permBrowse, nil) {
		p = nil
		ae.fields["project"] = "valid project is required"
	}
	if p != nil && !s.hasPerm(c.user, p, permCreate, nil) {
		return nil, errMsg(403, permMessage(permCreate))
	}
	var typ issueTypeDef
	if raw, ok := in.Fields["issuetype"]; ok {
		t, ok := lookupIssueType(raw)
		if !ok {
			ae.fields["issuetype"] = "valid issue type is required"
		}
		typ = t
	} else {
		ae.fields["issuetype"] = "issue type is required"
	}
	if raw, ok := in.Fields["summary"]; !ok || string(raw) == "null" || string(raw) == `""` {
		ae.fields["summary"] = "You must specify a summary of the issue."
	}
	if len(ae.fields) > 0 {
		return nil, ae
	}
	if err := validProperties(in.Properties); err != nil {
		return nil, err
	}
	wf := s.st.Workflows[p.Workflow]
	now := s.now()
	is := &issue{ID: s.st.nextID("issue"), Project: p.Key, Type: typ.ID, Status: wf.Initial, Priority: "3",
		Reporter: c.user.Name, Creator: c.user.Name, Created: now, Updated: now, Labels: []string{}, Custom: map[string]any{}}
	var parent *issue
	if raw, ok := in.Fields["parent"]; ok {
		var ref struct{ ID, Key string }
		_ = json.Unmarshal(raw, &ref)
		k := ref.Key
		if k == "" {
			k = ref.ID
		}
		parent = s.findIssue(k)
		switch {
		case !typ.Subtask:
			return nil, errField(400, "parent", "Issue type is not a sub-task but parent issue key or id specified.")
		case parent == nil:
			return nil, errField(400, "parent", "Could not find issue by id or key.")
		case parent.Parent != 0:
			return nil, errField(400, "parent", "Parent issue cannot be a sub-task.")
		case parent.Project != p.Key:
			return nil, errField(400, "parent", "Sub-task must be in the same project as its parent.")
		}
		is.Parent = parent.ID
	} else if typ.Subtask {
		return nil, errField(400, "parent", "Issue type is a sub-task but parent issue key or id not specified.")
	}
	for _, k := range sortedKeys(in.Fields) {
		if k == "project" || k == "issuetype" || k == "parent" {
			continue
		}
		if !s.onScreen(p, k, true) || s.hiddenByPerm(c, p, k, nil) {
			ae.fields[k] = notOnScreen(k)
			continue
		}
		if _, err := s.setField(c, is, k, "set", in.Fields[k]); err != nil {
			ae.fields[k] = err.Error()
		}
	}
	for _, k := range sortedKeys(in.Update) {
		if !s.onScreen(p, k, true) || s.hiddenByPerm(c, p, k, nil) {
			ae.fields[k] = notOnScreen(k)
			continue
		}
		for _, op := range in.Update[k] {
			for opName, v := range op {
				if _, err := s.setField(c, is, k, opName, v); err != nil {
					ae.fields[k] = err.Error()
				}
			}
		}
	}
	if len(ae.fields) > 0 {
		return nil, ae
	}
	p.Counter++
	is.Key = fmt.Sprintf("%s-%d", p.Key, p.Counter)
	if s.lookupUser(is.Reporter) != nil && !slices.Contains(is.Watchers, is.Reporter) {
		is.Watchers = append(is.Watchers, is.Reporter)
	}
	for _, pr := range in.Properties {
		setProperty(&is.Props, pr.Key, pr.Value)
	}
	s.st.Issues[is.ID] = is
	s.fire(c, is, "jira:issue_created", "issue_created", nil, nil)
	return is, nil
}

func lookupIssueType(raw json.RawMessage) (issueTypeDef, bool) {
	var ref struct{ ID, Name string }
	_ = json.Unmarshal(raw, &ref)
	for _, t := range issueTypes {
		if (ref.ID != "" && t.ID == ref.ID) || (ref.ID == "" && ref.Name != "" && strings.EqualFold(t.Name, ref.Name)) {
			return t, true
		}
	}
	return issueTypeDef{}, false
}

func (s *Server) editIssue(c *reqCtx) error {
	is, err := s.issueFor(c, permEdit)
	if err != nil {
		return err
	}
	var in issueInput
	if err := decode(c.r, &in); err != nil {
		return err
	}
	if err := validProperties(in.Properties); err != nil {
		return err
	}
	p := s.st.Projects[is.Project]
	ae := &apiError{status: 400, fields: map[string]string{}}
	// Work on a copy so that a refused edit changes nothing.
	work := cloneIssue(is)
	var items []historyItem
	var newComments []string
	for _, k := range sortedKeys(in.Fields) {
		if !s.onScreen(p, k, false) || k == "comment" || s.hiddenByPerm(c, p, k, is) {
			ae.fields[k] = notOnScreen(k)
			continue
		}
		items = append(items, s.changeField(c, work, k, "set", in.Fields[k], ae)...)
	}
	for _, k := range sortedKeys(in.Update) {
		if _, dup := in.Fields[k]; dup {
			ae.fields[k] = fmt.Sprintf("Field '%s' cannot be set in both 'fields' and 'update'.", k)
			continue
		}
		if !s.onScreen(p, k, false) || s.hiddenByPerm(c, p, k, is) {
			ae.fields[k] = notOnScreen(k)
			continue
		}
		it, added := s.updateField(c, work, k, in.Update[k], ae)
		items = append(items, it...)
		newComments = append(newComments, added...)
	}
	if len(ae.fields) > 0 {
		return ae
	}
	if len(newComments) > 0 && !s.hasPerm(c.user, p, permAddComments, is) {
		return errMsg(403, permMessage(permAddComments))
	}
	*is = *work
	for _, pr := range in.Properties {
		setProperty(&is.Props, pr.Key, pr.Value)
	}
	items = mergeItems(items)
	if len(items) > 0 {
		h := s.addHistory(c, is, items, in.HistoryMetadata)
		s.fire(c, is, "jira:issue_updated", "issue_generic", h, nil)
	}
	for _, body := range newComments {
		s.addComment(c, is, body, nil, nil)
	}
	c.dirty = true
	c.w.WriteHeader(204)
	return nil
}

// mergeItems folds several operations on one field (labels add + remove)
// into one history item from the first old value to the last new value.
func mergeItems(items []historyItem) []historyItem {
	var out []historyItem
	idx := map[string]int{}
	for _, it := range items {
		if i, ok := idx[it.Field]; ok {
			out[i].To, out[i].ToString = it.To, it.ToString
			continue
		}
		idx[it.Field] = len(out)
		out = append(out, it)
	}
	kept := out[:0]
	for _, it := range out {
		if !eqPtr(it.From, it.To) || !eqPtr(it.FromString, it.ToString) {
			kept = append(kept, it)
		}
	}
	return kept
}

func eqPtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// changeField runs one operation on field k of work, the copy an edit or a
// transition changes; a refusal is noted in ae against k, so that every
// refused field is reported at once and nothing is kept.
func (s *Server) changeField(c *reqCtx, work *issue, k, op string, raw json.RawMessage, ae *apiError) []historyItem {
	items, err := s.setField(c, work, k, op, raw)
	if err != nil {
		ae.fields[k] = err.Error()
	}
	return items
}

// updateField runs the "update" operations on field k of work. Comments
// added through update.comment are returned rather than added: the caller
// adds them once the whole request is accepted.
func (s *Server) updateField(c *reqCtx, work *issue, k string, ops []map[string]json.RawMessage, ae *apiError) (items []historyItem, comments []string) {
	for _, op := range ops {
		for _, opName := range sortedKeys(op) {
			if k != "comment" {
				items = append(items, s.changeField(c, work, k, opName, op[opName], ae)...)
				continue
			}
			body, err := commentFromOp(opName, op[opName])
			if err != nil {
				ae.fields[k] = err.Error()
				continue
			}
			comments = append(comments, body)
		}
	}
	return items, comments
}

func commentFromOp(op string, raw json.RawMessage) (string, error) {
	if op != "add" {
		return "", fmsgf("Operation '%s' is not supported for the comment field.", op)
	}
	var v struct{ Body string }
	if err := json.Unmarshal(raw, &v); err != nil || v.Body == "" {
		return "", fmsg("Comment body can not be empty!")
	}
	return v.Body, nil
}

func cloneIssue(is *issue) *issue {
	c := *is
	c.Labels = slices.Clone(is.Labels)
	c.Custom = map[string]any{}
	for k, v := range is.Custom {
		if ss, ok := v.([]string); ok {
			v = slices.Clone(ss)
		}
		c.Custom[k] = v
	}
	return &c
}

// addHistory records a changelog entry and bumps updated.
func (s *Server) addHistory(c *reqCtx, is *issue, items []historyItem, meta json.RawMessage) *history {
	now := s.now()
	h := &history{ID: s.st.nextID("history"), Author: c.user.Name, Created: now, Items: items}
	if len(meta) > 0 && string(meta) != "null" {
		h.Metadata = meta
	}
	is.History = append(is.History, h)
	is.Updated = now
	return h
}

func (s *Server) transitionsFor(is *issue) []transition {
	wf := s.st.Workflows[s.st.Projects[is.Project].Workflow]
	if wf == nil {
		return nil
	}
	var out []transition
	for _, t := range wf.Transitions {
		if len(t.From) == 0 {
			if t.To != is.Status {
				out = append(out, t)
			}
			continue
		}
		if slices.Contains(t.From, is.Status) {
			out = append(out, t)
		}
	}
	return out
}

func (s *Server) transitionsJSON(c *reqCtx, is *issue, withFields bool) []any {
	out := []any{}
	if !s.hasPerm(c.user, s.st.Projects[is.Project], permTransition, is) {
		return out
	}
	for _, t := range s.transitionsFor(is) {
		m := map[string]any{"id": t.ID, "name": t.Name, "to": s.statusJSON(c.base, t.To)}
		if withFields {
			fields := map[string]any{}
			if st, _ := statusByID(t.To); st.Category == 3 {
				fields["resolution"] = s.resolutionMeta(c, false)
			}
			m["fields"] = fields
		}
		out = append(out, m)
	}
	return out
}

func (s *Server) resolutionMeta(c *reqCtx, required bool) map[string]any {
	vals := []any{}
	for _, r := range resolutions {
		vals = append(vals, resolutionJSON(c.base, r.ID))
	}
	return map[string]any{"required": required, "schema": map[string]any{"type": "resolution", "system": "resolution"},
		"name": "Resolution", "fieldId": "resolution", "operations": []string{"set"}, "allowedValues": vals}
}

func (s *Server) doTransition(c *reqCtx) error {
	is, err := s.issueFor(c, "")
	if err != nil {
		return err
	}
	var in issueInput
	if err := decode(c.r, &in); err != nil {
		return err
	}
	if in.Transition == nil || in.Transition.ID == "" {
		return errMsg(400, "Missing 'transition' identifier")
	}
	if err := s.need(c, is, permTransition); err != nil {
		return err
	}
	var tr *transition
	for _, t := range s.transitionsFor(is) {
		if t.ID == in.Transition.ID {
			tr = &t
		}
	}
	if tr == nil {
		return errMsg(400, fmt.Sprintf("Transition id '%s' is not valid for this issue.", in.Transition.ID))
	}
	work := cloneIssue(is)
	oldStatus := work.Status
	toDone := mustStatus(tr.To).Category == 3
	items := []historyItem{}
	ae := &apiError{status: 400, fields: map[string]string{}}
	var newComments []string
	for _, k := range sortedKeys(in.Fields) {
		if k == "resolution" {
			if !toDone {
				ae.fields[k] = notOnScreen(k)
				continue
			}
			r, ok := lookupNamed(resolutions, in.Fields[k])
			if !ok {
				ae.fields[k] = "Could not find valid 'id' or 'name' in resolution object."
				continue
			}
			work.Resolution = r.ID
			continue
		}
		if !s.onScreen(s.st.Projects[is.Project], k, false) || k == "comment" {
			ae.fields[k] = notOnScreen(k)
			continue
		}
		items = append(items, s.changeField(c, work, k, "set", in.Fields[k], ae)...)
	}
	for _, k := range sortedKeys(in.Update) {
		it, added := s.updateField(c, work, k, in.Update[k], ae)
		items = append(items, it...)
		newComments = append(newComments, added...)
	}
	if len(ae.fields) > 0 {
		return ae
	}
	now := s.now()
	work.Status = tr.To
	oldRes := is.Resolution
	switch {
	case toDone && work.Resolution == "":
		work.Resolution = "10000"
	case !toDone:
		work.Resolution = ""
	}
	if work.Resolution != "" && oldRes == "" {
		work.Resolved = &now
	} else if work.Resolution == "" {
		work.Resolved = nil
	}
	statusItem := historyItem{Field: "status", FieldType: "jira", From: ptr(oldStatus), FromString: ptr(mustStatus(oldStatus).Name),
		To: ptr(tr.To), ToString: ptr(mustStatus(tr.To).Name)}
	var all []historyItem
	if work.Resolution != oldRes {
		all = append(all, historyItem{Field: "resolution", FieldType: "jira", From: resID(oldRes), FromString: resName(oldRes),
			To: resID(work.Resolution), ToString: resName(work.Resolution)})
	}
	all = append(all, statusItem)
	all = append(all, mergeItems(items)...)
	*is = *work
	h := s.addHistory(c, is, all, in.HistoryMetadata)
	s.fire(c, is, "jira:issue_updated", "issue_generic", h, nil)
	for _, body := range newComments {
		s.addComment(c, is, body, nil, nil)
	}
	c.dirty = true
	c.w.WriteHeader(204)
	return nil
}

func mustStatus(id string) statusDef {
	st, _ := statusByID(id)
	return st
}

func resID(id string) *string {
	if id == "" {
		return nil
	}
	return ptr(id)
}

func resName(id string) *string {
	if r, ok := nameDefByID(resolutions, id); ok {
		return ptr(r.Name)
	}
	return nil
}

func lookupNamed(list []nameDef, raw json.RawMessage) (nameDef, bool) {
	var ref struct{ ID, Name string }
	if err := json.Unmarshal(raw, &ref); err != nil {
		return nameDef{}, false
	}
	for _, d := range list {
		if (ref.ID != "" && d.ID == ref.ID) || (ref.ID == "" && ref.Name != "" && strings.EqualFold(d.Name, ref.Name)) {
			return d, true
		}
	}
	return nameDef{}, false
}

// metaFields describes the fields on the create or edit screen.
func (s *Server) metaFields(c *reqCtx, p *project, typeID string, create bool) map[string]any {
	out := map[string]any{}
	add := func(id string, required bool, ops []string, allowed []any) {
		if !s.onScreen(p, id, create) {
			return
		}
		name := systemFieldNames[id]
		if cf := s.st.Fields[id]; cf != nil {
			name = cf.Name
		}
		m := map[string]any{"required": required, "schema": s.fieldSchema(id), "name": name, "fieldId": id,
			"hasDefaultValue": false, "operations": ops}
		if allowed != nil {
			m["allowedValues"] = allowed
		}
		out[id] = m
	}
	set := []string{"set"}
	if create {
		add("project", true, set, []any{s.projectRef(c.base, p)})
		add("issuetype", true, set, []any{issueTypeJSON(c.base, typeID)})
		if t, _ := issueTypeByID(typeID); t.Subtask {
			add("parent", true, set, nil)
		}
	} else {
		var types []any
		for _, t := range issueTypes {
			cur, _ := issueTypeByID(typeID)
			if t.Subtask == cur.Subtask {
				types = append(types, issueTypeJSON(c.base, t.ID))
			}
		}
		add("issuetype", true, set, types)
		add("comment", false, []string{"add", "edit", "remove"}, nil)
	}
	add("summary", true, set, nil)
	add("description", false, set, nil)
	add("environment", false, set, nil)
	var prios []any
	for _, pr := range priorities {
		prios = append(prios, priorityJSON(c.base, pr.ID))
	}
	add("priority", false, set, prios)
	add("labels", false, []string{"add", "set", "remove"}, nil)
	add("assignee", false, set, nil)
	if s.hasPerm(c.user, p, permModifyReporter, nil) {
		add("reporter", true, set, nil)
	}
	add("duedate", false, set, nil)
	for _, id := range sortedKeys(s.st.Fields) {
		cf := s.st.Fields[id]
		var allowed []any
		ops := set
		switch cf.Type {
		case "select", "multiselect":
			allowed = []any{}
			for _, o := range cf.Options {
				allowed = append(allowed, s.optionJSON(c.base, cf, o.ID))
			}
			if cf.Type == "multiselect" {
				ops = []string{"add", "set", "remove"}
			}
		case "labels":
			ops = []string{"add", "set", "remove"}
		}
		add(id, false, ops, allowed)
	}
	return out
}

func (s *Server) createMeta(c *reqCtx) error {
	q := c.r.URL.Query()
	keys := splitList(q.Get("projectKeys"))
	ids := splitList(q.Get("projectIds"))
	typeIDs := splitList(q.Get("issuetypeIds"))
	typeNames := splitList(q.Get("issuetypeNames"))
	withFields := slices.Contains(expandList(c.r), "projects.issuetypes.fields")
	projects := []any{}
	for _, k := range sortedKeys(s.st.Projects) {
		p := s.st.Projects[k]
		if (len(keys) > 0 && !slices.Contains(keys, p.Key)) || (len(ids) > 0 && !slices.Contains(ids, idStr(p.ID))) {
			continue
		}
		if !s.hasPerm(c.user, p, permCreate, nil) {
			continue
		}
		types := []any{}
		for _, t := range issueTypes {
			if (len(typeIDs) > 0 && !slices.Contains(typeIDs, t.ID)) || (len(typeNames) > 0 && !slices.Contains(typeNames, t.Name)) {
				continue
			}
			m := issueTypeJSON(c.base, t.ID).(map[string]any)
			m["expand"] = "fields"
			if withFields {
				m["fields"] = s.metaFields(c, p, t.ID, true)
			}
			types = append(types, m)
		}
		pr := s.projectRef(c.base, p)
		pr["issuetypes"] = types
		projects = append(projects, pr)
	}
	writeJSON(c.w, 200, map[string]any{"expand": "projects", "projects": projects})
	return nil
}

func (s *Server) createMetaProject(c *reqCtx) (*project, error) {
	p := s.projectByID(c.r.PathValue("project"))
	if p == nil || !s.hasPerm(c.user, p, permBrowse, nil) {
		return nil, errMsg(404, "No project could be found with key '"+c.r.PathValue("project")+"'.")
	}
	if !s.hasPerm(c.user, p, permCreate, nil) {
		return nil, errMsg(403, permMessage(permCreate))
	}
	return p, nil
}

func (s *Server) createMetaTypes(c *reqCtx) error {
	if _, err := s.createMetaProject(c); err != nil {
		return err
	}
	vals := []any{}
	for _, t := range issueTypes {
		vals = append(vals, issueTypeJSON(c.base, t.ID))
	}
	start, max := pageParams(c.r, 50, 50)
	writeJSON(c.w, 200, map[string]any{"maxResults": max, "startAt": start, "total": len(vals), "isLast": start+max >= len(vals),
		"values": page(vals, start, max)})
	return nil
}

func (s *Server) createMetaFields(c *reqCtx) error {
	p, err := s.createMetaProject(c)
	if err != nil {
		return err
	}
	t, ok := issueTypeByID(c.r.PathValue("type"))
	if !ok {
		return errMsg(404, "Issue type with id '"+c.r.PathValue("type")+"' does not exist.")
	}
	fields := s.metaFields(c, p, t.ID, true)
	vals := []any{}
	for _, k := range sortedKeys(fields) {
		vals = append(vals, fields[k])
	}
	start, max := pageParams(c.r, 50, 50)
	writeJSON(c.w, 200, map[string]any{"maxResults": max, "startAt": start, "total": len(vals), "isLast": start+max >= len(vals),
		"values": page(vals, start, max)})
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
