/* routes_misc.c — GET / (the status page), GET /healthz and GET /metrics (Prometheus text
 * exposition format 0.0.4). The page is one self-contained HTML document with inline JS:
 * it lists jobs from /v1/fine_tuning/jobs and draws the selected job's loss curve on a
 * <canvas> from its events, refreshing every 2 s; no external assets. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/server.h"

static const char page_html[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>onnxtune</title>\n"
    "<style>body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}"
    "td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}tr.sel{background:#eef}"
    "tr{cursor:pointer}canvas{border:1px solid #ccc;margin-top:1em}#err{color:#b00}</style></head><body>\n"
    "<h1>onnxtune jobs</h1>\n"
    "<p>API key (only if the server needs one): <input id=\"key\" type=\"password\" size=\"30\"> "
    "<span id=\"err\"></span></p>\n"
    "<table><thead><tr><th>id</th><th>status</th><th>model</th><th>created</th><th>tokens</th>"
    "<th>fine-tuned model</th></tr></thead><tbody id=\"jobs\"></tbody></table>\n"
    "<h2 id=\"title\">loss</h2><canvas id=\"c\" width=\"800\" height=\"320\"></canvas>\n"
    "<script>\n"
    "'use strict';\n"
    "const keyEl=document.getElementById('key');keyEl.value=localStorage.getItem('ot_key')||'';\n"
    "keyEl.onchange=()=>{localStorage.setItem('ot_key',keyEl.value);refresh();};\n"
    "let sel=null;\n"
    "async function api(p){const h={};if(keyEl.value)h['Authorization']='Bearer '+keyEl.value;\n"
    " const r=await fetch(p,{headers:h});const j=await r.json();\n"
    " if(!r.ok)throw new Error(j.error?j.error.message:r.status);return j;}\n"
    "function td(tr,t){const e=document.createElement('td');e.textContent=t==null?'':String(t);tr.appendChild(e);}\n"
    "async function refresh(){\n"
    " try{const l=await api('/v1/fine_tuning/jobs?limit=100');const tb=document.getElementById('jobs');tb.textContent='';\n"
    "  for(const j of l.data){const tr=document.createElement('tr');if(j.id===sel)tr.className='sel';\n"
    "   td(tr,j.id);td(tr,j.status);td(tr,j.model);td(tr,new Date(j.created_at*1000).toLocaleString());\n"
    "   td(tr,j.trained_tokens);td(tr,j.fine_tuned_model);tr.onclick=()=>{sel=j.id;refresh();};tb.appendChild(tr);}\n"
    "  if(!sel&&l.data.length)sel=l.data[0].id;\n"
    "  if(sel)await curve(sel);document.getElementById('err').textContent='';\n"
    " }catch(e){document.getElementById('err').textContent=String(e.message||e);}}\n"
    "async function curve(id){\n"
    " const ev=await api('/v1/fine_tuning/jobs/'+id+'/events?limit=1000');const pts=[];\n"
    " for(const e of ev.data.slice().reverse()){const d=e.data||{};const y=d.train_loss!=null?d.train_loss:d.loss;\n"
    "  if(d.step!=null&&typeof y==='number')pts.push([d.step,y]);}\n"
    " document.getElementById('title').textContent='loss: '+id+' ('+pts.length+' steps)';\n"
    " const c=document.getElementById('c'),g=c.getContext('2d');g.clearRect(0,0,c.width,c.height);\n"
    " if(!pts.length)return;let x0=pts[0][0],x1=x0,y0=pts[0][1],y1=y0;\n"
    " for(const[x,y]of pts){x0=Math.min(x0,x);x1=Math.max(x1,x);y0=Math.min(y0,y);y1=Math.max(y1,y);}\n"
    " if(x1===x0)x1=x0+1;if(y1===y0)y1=y0+1;const L=50,B=c.height-25,W=c.width-L-10,H=B-10;\n"
    " g.strokeStyle='#888';g.beginPath();g.moveTo(L,10);g.lineTo(L,B);g.lineTo(L+W,B);g.stroke();\n"
    " g.fillStyle='#444';g.fillText(y1.toFixed(3),2,14);g.fillText(y0.toFixed(3),2,B);g.fillText('step '+x0,L,B+15);\n"
    " g.fillText('step '+x1,L+W-50,B+15);g.strokeStyle='#06c';g.beginPath();\n"
    " pts.forEach(([x,y],i)=>{const px=L+(x-x0)/(x1-x0)*W,py=B-(y-y0)/(y1-y0)*H;i?g.lineTo(px,py):g.moveTo(px,py);});\n"
    " g.stroke();}\n"
    "refresh();setInterval(refresh,2000);\n"
    "</script></body></html>\n";

enum MHD_Result ot_route_page(ot_http_req *r) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(sizeof page_html - 1, (void *)page_html, MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'");
    return ot_http_queue(r, 200, resp);
}

enum MHD_Result ot_route_healthz(ot_http_req *r) {
    ot_server *s = r->srv;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddNumberToObject(o, "schema_version", ot_store_schema_version(s->store));
    cJSON_AddNumberToObject(o, "jobs_running", ot_runner_active(s->runner));
    return ot_http_json(r, 200, o);
}

/* A growable text buffer for the exposition. */
typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) OT_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 8192;
        while (cap < b->n + (size_t)k + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

enum MHD_Result ot_route_metrics(ot_http_req *r) {
    ot_server *s = r->srv;
    int64_t counts[OT_JOB_NSTATES] = {0}, tokens = 0;
    ot_status st = ot_store_job_counts(s->store, counts, &tokens);
    if (st) return ot_http_error(r, 500, NULL, NULL, NULL, "job store: %s", ot_last_error());
    sbuf b = {0};
    sb_printf(&b, "# HELP onnxtune_jobs Fine-tuning jobs by status.\n# TYPE onnxtune_jobs gauge\n");
    for (int i = 0; i < OT_JOB_NSTATES; i++)
        sb_printf(&b, "onnxtune_jobs{status=\"%s\"} %lld\n", ot_job_status_name((ot_job_status)i), (long long)counts[i]);
    sb_printf(&b, "# HELP onnxtune_queue_depth Jobs waiting to run.\n# TYPE onnxtune_queue_depth gauge\n"
                  "onnxtune_queue_depth %lld\n",
              (long long)(counts[OT_JOB_QUEUED] + counts[OT_JOB_VALIDATING_FILES]));
    sb_printf(&b, "# HELP onnxtune_jobs_running_children Training processes running now.\n"
                  "# TYPE onnxtune_jobs_running_children gauge\nonnxtune_jobs_running_children %d\n",
              ot_runner_active(s->runner));
    sb_printf(&b, "# HELP onnxtune_trained_tokens_total Tokens trained over all jobs.\n"
                  "# TYPE onnxtune_trained_tokens_total counter\nonnxtune_trained_tokens_total %lld\n",
              (long long)tokens);
    sb_printf(&b, "# HELP onnxtune_http_requests_total HTTP requests by method, route and status.\n"
                  "# TYPE onnxtune_http_requests_total counter\n");
    pthread_mutex_lock(&s->metrics_mu);
    for (int i = 0; i < OT_METRIC_SLOTS && s->slots[i].count; i++)
        sb_printf(&b, "onnxtune_http_requests_total{method=\"%s\",route=\"%s\",code=\"%u\"} %llu\n", s->slots[i].method,
                  ot_route_pattern(s->slots[i].route), s->slots[i].code, (unsigned long long)s->slots[i].count);
    sb_printf(&b, "# HELP onnxtune_http_request_duration_seconds HTTP request latency by route.\n"
                  "# TYPE onnxtune_http_request_duration_seconds histogram\n");
    for (int ri = 0; ri <= ot_route_count(); ri++) {
        if (!s->lat_count[ri]) continue;
        const char *route = ot_route_pattern(ri - 1);
        uint64_t cum = 0;
        for (int k = 0; k < OT_METRIC_BUCKETS; k++) {
            cum += s->lat_buckets[ri][k];
            sb_printf(&b, "onnxtune_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", route,
                      ot_metric_bucket_bounds[k], (unsigned long long)cum);
        }
        sb_printf(&b, "onnxtune_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", route,
                  (unsigned long long)s->lat_count[ri]);
        sb_printf(&b, "onnxtune_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", route, s->lat_sum[ri]);
        sb_printf(&b, "onnxtune_http_request_duration_seconds_count{route=\"%s\"} %llu\n", route,
                  (unsigned long long)s->lat_count[ri]);
    }
    pthread_mutex_unlock(&s->metrics_mu);
    if (b.oom || !b.p) {
        free(b.p);
        return ot_http_error(r, 500, NULL, NULL, NULL, "out of memory");
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(b.n, b.p, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(b.p);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    return ot_http_queue(r, 200, resp);
}
