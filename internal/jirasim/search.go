package jirasim

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jirabridge/jirabridge/internal/jirasim/jql"
)

// issueDoc adapts an issue to the JQL evaluator. Called with s.mu held.
type issueDoc struct {
	s  *Server
	c  *reqCtx
	is *issue
}

func (d issueDoc) user(name string) []jql.Value {
	if name == "" {
		return nil
	}
	u := d.s.lookupUser(name)
	if u == nil {
		return []jql.Value{jql.String(name)}
	}
	return []jql.Value{jql.String(u.Name, u.Key, u.DisplayName, u.Email)}
}

func (d issueDoc) Values(f string) []jql.Value {
	is, s := d.is, d.s
	switch f {
	case "project":
		p := s.st.Projects[is.Project]
		return []jql.Value{jql.String(p.Key, p.Name, idStr(p.ID))}
	case "key":
		return []jql.Value{jql.Issue(is.Key, is.ID)}
	case "parent":
		if par := s.st.Issues[is.Parent]; par != nil {
			return []jql.Value{jql.Issue(par.Key, par.ID)}
		}
	case "issuetype":
		t, _ := issueTypeByID(is.Type)
		return []jql.Value{jql.String(t.Name, t.ID)}
	case "status":
		st := mustStatus(is.Status)
		return []jql.Value{jql.String(st.Name, st.ID)}
	case "statuscategory":
		cat := categories[mustStatus(is.Status).Category]
		return []jql.Value{jql.String(cat.Name, cat.Key, strconv.Itoa(cat.ID))}
	case "resolution":
		if r, ok := nameDefByID(resolutions, is.Resolution); ok {
			return []jql.Value{jql.String(r.Name, r.ID)}
		}
	case "priority":
		if p, ok := nameDefByID(priorities, is.Priority); ok {
			return []jql.Value{jql.String(p.Name, p.ID)}
		}
	case "labels":
		var out []jql.Value
		for _, l := range is.Labels {
			out = append(out, jql.String(l))
		}
		return out
	case "created":
		return []jql.Value{jql.Time(is.Created)}
	case "updated":
		return []jql.Value{jql.Time(is.Updated)}
	case "resolutiondate":
		if is.Resolved != nil {
			return []jql.Value{jql.Time(*is.Resolved)}
		}
	case "duedate":
		if t, err := time.ParseInLocation("2006-01-02", is.Due, s.opts.Location); err == nil {
			return []jql.Value{jql.Time(t)}
		}
	case "creator":
		return d.user(is.Creator)
	case "reporter":
		return d.user(is.Reporter)
	case "assignee":
		return d.user(is.Assignee)
	case "summary":
		return []jql.Value{jql.String(is.Summary)}
	case "description":
		if is.Description != nil {
			return []jql.Value{jql.String(*is.Description)}
		}
	case "environment":
		if is.Environment != nil {
			return []jql.Value{jql.String(*is.Environment)}
		}
	case "comment":
		var out []jql.Value
		for _, cm := range s.visibleComments(d.c, is) {
			out = append(out, jql.String(cm.Body))
		}
		return out
	case "text":
		out := []jql.Value{jql.String(is.Summary)}
		out = append(out, d.Values("description")...)
		out = append(out, d.Values("environment")...)
		out = append(out, d.Values("comment")...)
		return out
	default:
		cf := s.st.Fields[f]
		if cf == nil {
			return nil
		}
		v, ok := is.Custom[f]
		if !ok || v == nil {
			return nil
		}
		switch cf.Type {
		case "float":
			return []jql.Value{jql.Number(v.(float64))}
		case "datepicker":
			t, _ := time.ParseInLocation("2006-01-02", v.(string), s.opts.Location)
			return []jql.Value{jql.Time(t)}
		case "datetime":
			t, _ := time.Parse(TimeFormat, v.(string))
			return []jql.Value{jql.Time(t)}
		case "userpicker":
			return d.user(v.(string))
		case "select", "multiselect":
			var out []jql.Value
			ids := toStrings(v)
			if cf.Type == "select" {
				ids = []string{v.(string)}
			}
			for _, id := range ids {
				for _, o := range cf.Options {
					if o.ID == id {
						out = append(out, jql.String(o.Value, o.ID))
					}
				}
			}
			return out
		case "labels":
			var out []jql.Value
			for _, l := range toStrings(v) {
				out = append(out, jql.String(l))
			}
			return out
		default:
			if str, ok := v.(string); ok {
				return []jql.Value{jql.String(str)}
			}
		}
	}
	return nil
}

// siteValidator answers the JQL parser's "does this value exist" questions
// so that unknown projects, statuses and users fail as in Jira.
type siteValidator struct {
	s *Server
	c *reqCtx
}

func (v siteValidator) Exists(f, value string) bool {
	s := v.s
	eq := strings.EqualFold
	switch f {
	case "project":
		for _, p := range s.st.Projects {
			if (eq(p.Key, value) || eq(p.Name, value) || idStr(p.ID) == value) && s.hasPerm(v.c.user, p, permBrowse, nil) {
				return true
			}
		}
	case "issuetype":
		for _, t := range issueTypes {
			if eq(t.Name, value) || t.ID == value {
				return true
			}
		}
	case "status":
		for _, st := range statuses {
			if eq(st.Name, value) || st.ID == value {
				return true
			}
		}
	case "resolution":
		for _, r := range resolutions {
			if eq(r.Name, value) || r.ID == value {
				return true
			}
		}
		return eq(value, "Unresolved")
	case "priority":
		for _, p := range priorities {
			if eq(p.Name, value) || p.ID == value {
				return true
			}
		}
	case "assignee", "reporter", "creator":
		for _, u := range s.st.Users {
			if eq(u.Name, value) || eq(u.DisplayName, value) || eq(u.Email, value) || u.Key == value {
				return true
			}
		}
	case "key", "parent":
		return s.findIssue(value) != nil
	default:
		if cf := s.st.Fields[f]; cf != nil {
			for _, o := range cf.Options {
				if eq(o.Value, value) || o.ID == value {
					return true
				}
			}
		}
	}
	return false
}

func (s *Server) customFieldRef(ref string) (jql.CustomField, bool) {
	types := map[string]jql.Type{"textfield": jql.TypeText, "textarea": jql.TypeText, "float": jql.TypeNumber,
		"select": jql.TypeOption, "multiselect": jql.TypeOption, "datepicker": jql.TypeDate, "datetime": jql.TypeDateTime,
		"userpicker": jql.TypeUser, "labels": jql.TypeLabels}
	if cf := s.st.Fields[ref]; cf != nil {
		return jql.CustomField{ID: cf.ID, Name: cf.Name, Type: types[cf.Type]}, true
	}
	for _, id := range sortedKeys(s.st.Fields) {
		if cf := s.st.Fields[id]; strings.EqualFold(cf.Name, ref) {
			return jql.CustomField{ID: cf.ID, Name: cf.Name, Type: types[cf.Type]}, true
		}
	}
	return jql.CustomField{}, false
}

// parseJQL compiles a query for the calling user. Called with s.mu held.
func (s *Server) parseJQL(c *reqCtx, q string) (*jql.Query, error) {
	name := ""
	if c.user != nil {
		name = c.user.Name
	}
	query, err := jql.ParseWith(q, jql.Options{Location: s.opts.Location, Now: s.opts.Now, CurrentUser: name,
		CustomField: s.customFieldRef, Validator: siteValidator{s, c}})
	if err != nil {
		var je *jql.Error
		if errors.As(err, &je) {
			return nil, &apiError{status: 400, messages: je.Messages}
		}
		return nil, errMsg(400, err.Error())
	}
	return query, nil
}

// searchIssues returns the issues the caller may browse that match, in order.
func (s *Server) searchIssues(c *reqCtx, q *jql.Query) ([]*issue, error) {
	var docs []jql.Doc
	for _, id := range sortedKeys(s.st.Issues) {
		is := s.st.Issues[id]
		if !s.hasPerm(c.user, s.st.Projects[is.Project], permBrowse, is) {
			continue
		}
		d := issueDoc{s, c, is}
		ok, err := q.Match(d)
		if err != nil {
			var je *jql.Error
			if errors.As(err, &je) {
				return nil, &apiError{status: 400, messages: je.Messages}
			}
			return nil, errMsg(400, err.Error())
		}
		if ok {
			docs = append(docs, d)
		}
	}
	slices.SortStableFunc(docs, q.Compare)
	out := make([]*issue, len(docs))
	for i, d := range docs {
		out[i] = d.(issueDoc).is
	}
	return out, nil
}

type searchInput struct {
	JQL           string   `json:"jql"`
	StartAt       *int     `json:"startAt"`
	MaxResults    *int     `json:"maxResults"`
	Fields        []string `json:"fields"`
	Expand        []string `json:"expand"`
	ValidateQuery any      `json:"validateQuery"`
	Properties    []string `json:"properties"`
}

func (s *Server) routesSearch() {
	s.route("GET /rest/api/2/search", true, func(c *reqCtx) error {
		q := c.r.URL.Query()
		start, max := pageParams(c.r, 50, s.opts.MaxResults)
		return s.search(c, searchInput{JQL: q.Get("jql"), StartAt: &start, MaxResults: &max,
			Fields: splitList(q.Get("fields")), Expand: splitList(q.Get("expand"))})
	})
	s.route("POST /rest/api/2/search", true, func(c *reqCtx) error {
		var in searchInput
		if err := decode(c.r, &in); err != nil {
			return err
		}
		return s.search(c, in)
	})
}

func (s *Server) search(c *reqCtx, in searchInput) error {
	start, max := 0, 50
	if in.StartAt != nil && *in.StartAt > 0 {
		start = *in.StartAt
	}
	if in.MaxResults != nil && *in.MaxResults >= 0 {
		max = *in.MaxResults
	}
	max = min(max, s.opts.MaxResults)
	if in.Properties != nil {
		c.props = append([]string{}, in.Properties...)
	}
	q, err := s.parseJQL(c, in.JQL)
	if err != nil {
		return err
	}
	hits, err := s.searchIssues(c, q)
	if err != nil {
		return err
	}
	fields := strings.Join(in.Fields, ",")
	if fields == "" {
		fields = "*navigable"
	}
	out := []any{}
	for i := start; i < len(hits) && i < start+max; i++ {
		m := s.issueJSON(c, hits[i], fields, in.Expand)
		m["expand"] = "operations,versionedRepresentations,editmeta,changelog,renderedFields"
		out = append(out, m)
	}
	writeJSON(c.w, 200, map[string]any{"expand": "schema,names", "startAt": start, "maxResults": max, "total": len(hits), "issues": out})
	return nil
}
