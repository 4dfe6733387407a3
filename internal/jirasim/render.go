package jirasim

import (
	"html"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

func (s *Server) statusJSON(base, id string) any {
	st, ok := statusByID(id)
	if !ok {
		return nil
	}
	cat := categories[st.Category]
	return map[string]any{
		"self": base + "/rest/api/2/status/" + st.ID, "description": st.Desc,
		"iconUrl": base + "/images/icons/statuses/generic.png", "name": st.Name, "id": st.ID,
		"statusCategory": map[string]any{"self": base + "/rest/api/2/statuscategory/" + strconv.Itoa(cat.ID),
			"id": cat.ID, "key": cat.Key, "colorName": cat.Color, "name": cat.Name},
	}
}

func issueTypeJSON(base, id string) any {
	t, ok := issueTypeByID(id)
	if !ok {
		return nil
	}
	return map[string]any{"self": base + "/rest/api/2/issuetype/" + t.ID, "id": t.ID, "description": t.Desc,
		"iconUrl": base + "/secure/viewavatar?size=xsmall&avatarId=" + strconv.Itoa(t.Avatar) + "&avatarType=issuetype",
		"name":    t.Name, "subtask": t.Subtask, "avatarId": t.Avatar}
}

func priorityJSON(base, id string) any {
	p, ok := nameDefByID(priorities, id)
	if !ok {
		return nil
	}
	return map[string]any{"self": base + "/rest/api/2/priority/" + p.ID, "iconUrl": base + "/images/icons/priorities/" +
		strings.ToLower(p.Name) + ".svg", "name": p.Name, "id": p.ID}
}

func resolutionJSON(base, id string) any {
	r, ok := nameDefByID(resolutions, id)
	if !ok {
		return nil
	}
	return map[string]any{"self": base + "/rest/api/2/resolution/" + r.ID, "id": r.ID, "description": r.Desc, "name": r.Name}
}

func (s *Server) projectRef(base string, p *project) map[string]any {
	av := base + "/secure/projectavatar?avatarId=10324"
	return map[string]any{"self": base + "/rest/api/2/project/" + idStr(p.ID), "id": idStr(p.ID), "key": p.Key, "name": p.Name,
		"projectTypeKey": p.TypeKey,
		"avatarUrls":     map[string]string{"48x48": av, "24x24": av + "&size=small", "16x16": av + "&size=xsmall", "32x32": av + "&size=medium"}}
}

func (s *Server) issueSelf(base string, is *issue) string {
	return base + "/rest/api/2/issue/" + idStr(is.ID)
}

// issueRef is the short form used for parent, subtasks and links.
func (s *Server) issueRef(base string, is *issue) map[string]any {
	return map[string]any{"id": idStr(is.ID), "key": is.Key, "self": s.issueSelf(base, is),
		"fields": map[string]any{"summary": is.Summary, "status": s.statusJSON(base, is.Status),
			"priority": priorityJSON(base, is.Priority), "issuetype": issueTypeJSON(base, is.Type)}}
}

// customValueJSON renders a stored custom field value the way Jira returns it.
func (s *Server) customValueJSON(c *reqCtx, f *field, v any) any {
	if v == nil {
		return nil
	}
	switch f.Type {
	case "select":
		return s.optionJSON(c.base, f, v.(string))
	case "multiselect":
		out := []any{}
		for _, id := range toStrings(v) {
			out = append(out, s.optionJSON(c.base, f, id))
		}
		return out
	case "userpicker":
		return s.userJSON(c, v.(string))
	case "labels":
		return toStrings(v)
	}
	return v
}

func (s *Server) optionJSON(base string, f *field, id string) any {
	for _, o := range f.Options {
		if o.ID == id {
			return map[string]any{"self": base + "/rest/api/2/customFieldOption/" + o.ID, "value": o.Value, "id": o.ID, "disabled": false}
		}
	}
	return nil
}

func toStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []string:
		return x
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// visibleComments filters comments restricted to a role or group.
func (s *Server) visibleComments(c *reqCtx, is *issue) []*comment {
	var out []*comment
	p := s.st.Projects[is.Project]
	for _, id := range idsWhere(s.st.Comments, func(cm *comment) bool { return cm.Issue == is.ID }) {
		cm := s.st.Comments[id]
		if cm.Issue != is.ID || !s.canSeeComment(c.user, p, cm) {
			continue
		}
		out = append(out, cm)
	}
	return out
}

func (s *Server) canSeeComment(u *user, p *project, cm *comment) bool {
	if cm.Visibility == nil || u == nil {
		return cm.Visibility == nil
	}
	switch cm.Visibility.Type {
	case "role":
		return p.inRole(u, cm.Visibility.Value)
	case "group":
		return u.inGroup(cm.Visibility.Value)
	}
	return true
}

func (s *Server) commentJSON(c *reqCtx, cm *comment, rendered bool) map[string]any {
	is := s.st.Issues[cm.Issue]
	m := map[string]any{
		"self":         s.issueSelf(c.base, is) + "/comment/" + idStr(cm.ID),
		"id":           idStr(cm.ID),
		"author":       s.userJSON(c, cm.Author),
		"body":         cm.Body,
		"updateAuthor": s.userJSON(c, cm.UpdAuthor),
		"created":      fmtTime(cm.Created),
		"updated":      fmtTime(cm.Updated),
	}
	if rendered {
		m["renderedBody"] = renderText(cm.Body)
	}
	if c.r != nil && slices.Contains(expandList(c.r), "properties") {
		props := []any{}
		for _, k := range sortedKeys(cm.Props) {
			props = append(props, map[string]any{"key": k, "value": cm.Props[k]})
		}
		m["properties"] = props
	}
	if cm.Visibility != nil {
		m["visibility"] = map[string]string{"type": cm.Visibility.Type, "value": cm.Visibility.Value}
	}
	return m
}

func renderText(s string) string {
	if s == "" {
		return ""
	}
	parts := strings.Split(html.EscapeString(s), "\n\n")
	for i, p := range parts {
		parts[i] = "<p>" + strings.ReplaceAll(p, "\n", "<br/>\n") + "</p>"
	}
	return strings.Join(parts, "\n\n")
}

func (s *Server) attachmentJSON(c *reqCtx, a *attachment) map[string]any {
	return map[string]any{
		"self": c.base + "/rest/api/2/attachment/" + idStr(a.ID), "id": idStr(a.ID), "filename": a.Filename,
		"author": s.userJSON(c, a.Author), "created": fmtTime(a.Created), "size": len(a.Content), "mimeType": a.MimeType,
		"content": c.base + "/secure/attachment/" + idStr(a.ID) + "/" + url.PathEscape(a.Filename),
	}
}

func (s *Server) linkTypeJSON(base string, lt *linkType) map[string]any {
	return map[string]any{"id": lt.ID, "name": lt.Name, "inward": lt.Inward, "outward": lt.Outward,
		"self": base + "/rest/api/2/issueLinkType/" + lt.ID}
}

// linksJSON renders the issuelinks field from the point of view of is.
func (s *Server) linksJSON(c *reqCtx, is *issue) []any {
	out := []any{}
	for _, id := range idsWhere(s.st.Links, func(l *issueLink) bool { return l.Inward == is.ID || l.Outward == is.ID }) {
		l := s.st.Links[id]
		lt := s.st.LinkTypes[l.Type]
		if lt == nil {
			continue
		}
		m := map[string]any{"id": idStr(l.ID), "self": c.base + "/rest/api/2/issueLink/" + idStr(l.ID), "type": s.linkTypeJSON(c.base, lt)}
		switch is.ID {
		case l.Outward:
			// The issue is the outward end's source: it "blocks" the other.
			if o := s.st.Issues[l.Inward]; o != nil {
				m["inwardIssue"] = s.issueRef(c.base, o)
			}
		case l.Inward:
			if o := s.st.Issues[l.Outward]; o != nil {
				m["outwardIssue"] = s.issueRef(c.base, o)
			}
		default:
			continue
		}
		out = append(out, m)
	}
	return out
}

// systemFieldNames are the display names Jira reports in expand=names.
var systemFieldNames = map[string]string{
	"summary": "Summary", "description": "Description", "environment": "Environment", "issuetype": "Issue Type",
	"project": "Project", "status": "Status", "resolution": "Resolution", "resolutiondate": "Resolved",
	"priority": "Priority", "labels": "Labels", "assignee": "Assignee", "reporter": "Reporter", "creator": "Creator",
	"created": "Created", "updated": "Updated", "duedate": "Due Date", "parent": "Parent", "subtasks": "Sub-Tasks",
	"comment": "Comment", "attachment": "Attachment", "issuelinks": "Linked Issues", "watches": "Watchers",
	"votes": "Votes", "components": "Component/s", "fixVersions": "Fix Version/s", "versions": "Affects Version/s",
	"lastViewed": "Last Viewed", "timetracking": "Time Tracking", "worklog": "Log Work", "statuscategorychangedate": "Status Category Changed",
}

func fieldWanted(spec string) func(string) bool {
	if spec == "" || spec == "*all" || spec == "*navigable" {
		return func(string) bool { return true }
	}
	include := map[string]bool{}
	exclude := map[string]bool{}
	all := false
	for _, f := range strings.Split(spec, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "*all" || f == "*navigable":
			all = true
		case strings.HasPrefix(f, "-"):
			exclude[f[1:]] = true
		case f != "":
			include[f] = true
		}
	}
	return func(name string) bool {
		if exclude[name] {
			return false
		}
		return all || include[name]
	}
}

// issueJSON renders an issue like GET /rest/api/2/issue/{key}.
func (s *Server) issueJSON(c *reqCtx, is *issue, fieldSpec string, expand []string) map[string]any {
	m := s.issueJSONFields(c, is, fieldSpec, expand)
	// ?properties=*all or a list of keys adds entity properties, as in Jira.
	if c.props != nil {
		props := map[string]any{}
		for _, k := range c.props {
			if k == "*all" {
				for pk, v := range is.Props {
					props[pk] = v
				}
			} else if v, ok := is.Props[k]; ok {
				props[k] = v
			}
		}
		m["properties"] = props
	}
	return m
}

func (s *Server) issueJSONFields(c *reqCtx, is *issue, fieldSpec string, expand []string) map[string]any {
	base := c.base
	want := fieldWanted(fieldSpec)
	p := s.st.Projects[is.Project]
	f := map[string]any{}
	set := func(k string, v func() any) {
		if want(k) {
			f[k] = v()
		}
	}
	set("summary", func() any { return is.Summary })
	set("description", func() any { return strOrNil(is.Description) })
	set("environment", func() any { return strOrNil(is.Environment) })
	set("issuetype", func() any { return issueTypeJSON(base, is.Type) })
	set("project", func() any { return s.projectRef(base, p) })
	set("status", func() any { return s.statusJSON(base, is.Status) })
	set("resolution", func() any { return resolutionJSON(base, is.Resolution) })
	set("resolutiondate", func() any {
		if is.Resolved == nil {
			return nil
		}
		return fmtTime(*is.Resolved)
	})
	set("priority", func() any { return priorityJSON(base, is.Priority) })
	set("labels", func() any { return append([]string{}, is.Labels...) })
	set("assignee", func() any { return s.userJSON(c, is.Assignee) })
	set("reporter", func() any { return s.userJSON(c, is.Reporter) })
	set("creator", func() any { return s.userJSON(c, is.Creator) })
	set("created", func() any { return fmtTime(is.Created) })
	set("updated", func() any { return fmtTime(is.Updated) })
	set("lastViewed", func() any { return nil })
	set("duedate", func() any {
		if is.Due == "" {
			return nil
		}
		return is.Due
	})
	set("components", func() any { return []any{} })
	set("fixVersions", func() any { return []any{} })
	set("versions", func() any { return []any{} })
	set("votes", func() any {
		return map[string]any{"self": s.issueSelf(base, is) + "/votes", "votes": 0, "hasVoted": false}
	})
	set("watches", func() any {
		return map[string]any{"self": s.issueSelf(base, is) + "/watchers", "watchCount": len(is.Watchers),
			"isWatching": c.user != nil && slices.Contains(is.Watchers, c.user.Name)}
	})
	set("timetracking", func() any { return map[string]any{} })
	set("worklog", func() any { return map[string]any{"startAt": 0, "maxResults": 20, "total": 0, "worklogs": []any{}} })
	if is.Parent != 0 {
		set("parent", func() any {
			if par := s.st.Issues[is.Parent]; par != nil {
				return s.issueRef(base, par)
			}
			return nil
		})
	}
	set("subtasks", func() any {
		out := []any{}
		for _, id := range idsWhere(s.st.Issues, func(ch *issue) bool { return ch.Parent == is.ID }) {
			out = append(out, s.issueRef(base, s.st.Issues[id]))
		}
		return out
	})
	set("comment", func() any {
		cs := []any{}
		for _, cm := range s.visibleComments(c, is) {
			cs = append(cs, s.commentJSON(c, cm, false))
		}
		return map[string]any{"comments": cs, "maxResults": len(cs), "total": len(cs), "startAt": 0}
	})
	set("attachment", func() any {
		out := []any{}
		for _, id := range idsWhere(s.st.Attachments, func(a *attachment) bool { return a.Issue == is.ID }) {
			out = append(out, s.attachmentJSON(c, s.st.Attachments[id]))
		}
		return out
	})
	set("issuelinks", func() any { return s.linksJSON(c, is) })
	for _, id := range sortedKeys(s.st.Fields) {
		cf := s.st.Fields[id]
		set(id, func() any { return s.customValueJSON(c, cf, is.Custom[id]) })
	}
	m := map[string]any{
		"expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
		"id":     idStr(is.ID), "self": s.issueSelf(base, is), "key": is.Key, "fields": f,
	}
	for _, e := range expand {
		switch e {
		case "changelog":
			hs := []any{}
			for _, h := range is.History {
				hs = append(hs, s.historyJSON(c, h))
			}
			m["changelog"] = map[string]any{"startAt": 0, "maxResults": len(hs), "total": len(hs), "histories": hs}
		case "names":
			names := map[string]string{}
			for k := range f {
				if n, ok := systemFieldNames[k]; ok {
					names[k] = n
				} else if cf := s.st.Fields[k]; cf != nil {
					names[k] = cf.Name
				}
			}
			m["names"] = names
		case "schema":
			schema := map[string]any{}
			for k := range f {
				schema[k] = s.fieldSchema(k)
			}
			m["schema"] = schema
		case "renderedFields":
			rf := map[string]any{}
			for k, v := range f {
				rf[k] = nil
				_ = v
			}
			if want("description") && is.Description != nil {
				rf["description"] = renderText(*is.Description)
			}
			if want("environment") && is.Environment != nil {
				rf["environment"] = renderText(*is.Environment)
			}
			if want("created") {
				rf["created"] = is.Created.Format("02/Jan/06 3:04 PM")
			}
			if want("updated") {
				rf["updated"] = is.Updated.Format("02/Jan/06 3:04 PM")
			}
			if want("comment") {
				cs := []any{}
				for _, cm := range s.visibleComments(c, is) {
					x := s.commentJSON(c, cm, false)
					x["body"] = renderText(cm.Body)
					cs = append(cs, x)
				}
				rf["comment"] = map[string]any{"comments": cs, "maxResults": len(cs), "total": len(cs), "startAt": 0}
			}
			for id, cf := range s.st.Fields {
				if (cf.Type == "textarea") && want(id) {
					if v, ok := is.Custom[id].(string); ok {
						rf[id] = renderText(v)
					}
				}
			}
			m["renderedFields"] = rf
		case "transitions":
			m["transitions"] = s.transitionsJSON(c, is, false)
		case "editmeta":
			m["editmeta"] = map[string]any{"fields": s.metaFields(c, p, is.Type, false)}
		}
	}
	return m
}

func strOrNil(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func (s *Server) historyJSON(c *reqCtx, h *history) map[string]any {
	items := make([]historyItem, len(h.Items))
	copy(items, h.Items)
	m := map[string]any{"id": idStr(h.ID), "author": s.userJSON(c, h.Author), "created": fmtTime(h.Created), "items": items}
	if len(h.Metadata) > 0 {
		m["historyMetadata"] = h.Metadata
	}
	return m
}

// fieldSchema is the "schema" of a field in createmeta, editmeta and /field.
func (s *Server) fieldSchema(id string) map[string]any {
	if cf := s.st.Fields[id]; cf != nil {
		num := strings.TrimPrefix(cf.ID, "customfield_")
		n, _ := strconv.Atoi(num)
		m := map[string]any{"custom": customTypePrefix + cf.Type, "customId": n}
		switch cf.Type {
		case "textfield", "textarea":
			m["type"] = "string"
		case "float":
			m["type"] = "number"
		case "select":
			m["type"] = "option"
		case "multiselect":
			m["type"], m["items"] = "array", "option"
		case "labels":
			m["type"], m["items"] = "array", "string"
		case "datepicker":
			m["type"] = "date"
		case "datetime":
			m["type"] = "datetime"
		case "userpicker":
			m["type"] = "user"
		}
		return m
	}
	sys := map[string]map[string]any{
		"summary": {"type": "string"}, "description": {"type": "string"}, "environment": {"type": "string"},
		"issuetype": {"type": "issuetype"}, "project": {"type": "project"}, "status": {"type": "status"},
		"resolution": {"type": "resolution"}, "resolutiondate": {"type": "datetime"}, "priority": {"type": "priority"},
		"labels": {"type": "array", "items": "string"}, "assignee": {"type": "user"}, "reporter": {"type": "user"},
		"creator": {"type": "user"}, "created": {"type": "datetime"}, "updated": {"type": "datetime"},
		"duedate": {"type": "date"}, "parent": {"type": "issuelink"}, "subtasks": {"type": "array", "items": "issuelinks"},
		"comment": {"type": "comments-page"}, "attachment": {"type": "array", "items": "attachment"},
		"issuelinks": {"type": "array", "items": "issuelinks"}, "watches": {"type": "watches"}, "votes": {"type": "votes"},
		"components": {"type": "array", "items": "component"}, "fixVersions": {"type": "array", "items": "version"},
		"versions": {"type": "array", "items": "version"}, "lastViewed": {"type": "datetime"},
		"timetracking": {"type": "timetracking"}, "worklog": {"type": "array", "items": "worklog"},
	}
	m := sys[id]
	if m == nil {
		m = map[string]any{"type": "any"}
	}
	m["system"] = id
	return m
}

// dateOnly validates a Jira date ("2006-01-02").
func dateOnly(v string) bool {
	_, err := time.Parse("2006-01-02", v)
	return err == nil
}
