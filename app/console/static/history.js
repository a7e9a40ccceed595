// History: net per currency over the last days (uPlot, vendored) with tesoro's gaps, and the
// accounts that changed since yesterday. Loaded only when this tesoro keeps history.

import uPlot from "./vendor/uplot/uPlot.esm.js";

function table(captionText, headers, rows, id) {
  const el = document.createElement("table");
  if (id) el.id = id;
  el.createCaption().textContent = captionText;
  const head = el.createTHead().insertRow();
  for (const text of headers) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = text;
    head.append(th);
  }
  const body = el.createTBody();
  for (const cells of rows) {
    const row = body.insertRow();
    cells.forEach((text, i) => {
      const c = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) c.scope = "row";
      c.textContent = text;
      row.append(c);
    });
  }
  const scroll = document.createElement("div");
  scroll.className = "scroll";
  scroll.append(el);
  return scroll;
}

export async function renderHistory(box, note, history, changes, options) {
  const { t, money, locale, sinceYesterday, changesSince, accountName, range } = options;
  box.replaceChildren();
  if (!history.ok) {
    const body = await history.json().catch(() => ({}));
    note.hidden = false;
    note.textContent = body.detail || t("historyEmpty");
    box.hidden = true;
    return;
  }
  const data = await history.json();
  const points = data.points || [];
  note.hidden = points.length > 0;
  note.textContent = points.length ? "" : t("historyEmpty");
  box.hidden = false;
  const currencies = [...new Set(points.flatMap((p) => p.totals.map((x) => x.currency)))].sort();
  const gaps = data.gaps || [];
  if (points.length) {
    const xs = points.map((p) => Date.parse(p.at) / 1000);
    const picker = document.createElement("label");
    picker.className = "chart-currency";
    picker.append(t("colCurrency"), " ");
    const select = document.createElement("select");
    select.id = "history-currency";
    for (const c of currencies) select.append(Object.assign(document.createElement("option"), { value: c, textContent: c }));
    if (currencies.includes(options.currency)) select.value = options.currency;
    picker.append(select);
    box.append(picker);
    const chart = document.createElement("figure");
    chart.className = "chart";
    const caption = document.createElement("figcaption");
    caption.textContent = t("historyCaption");
    chart.append(caption);
    box.append(chart);
    const compact = new Intl.NumberFormat(locale, { notation: "compact", maximumFractionDigits: 1 });
    let plot = null;
    const draw = () => {
      const currency = select.value;
      options.onCurrency?.(currency);
      // Plot coordinates only: every figure a person reads is in the table below, exact.
      const ys = points.map((p) => {
        const total = p.totals.find((x) => x.currency === currency);
        return total ? Number(total.net) : null;
      });
      plot?.destroy();
      plot = new uPlot(chartOptions(currency), [xs, ys], chart);
    };
    const chartOptions = (currency) => ({
        width: Math.max(280, Math.min(box.clientWidth || 600, 900)),
        height: 220,
        scales: { x: { time: true, range: () => range } },
        series: [{}, { label: `${t("colNet")} ${currency}`, stroke: "#1f5fa8", width: 2, spanGaps: false, points: { show: true, size: 6 } }],
        axes: [{}, { size: 60, values: (u, ticks) => ticks.map((v) => compact.format(v)) }],
        hooks: {
          drawClear: [
            (u) => {
              const ctx = u.ctx;
              ctx.save();
              ctx.fillStyle = "rgba(180,0,0,0.08)";
              for (const gap of gaps) {
                const x0 = u.valToPos(Date.parse(gap.started_at) / 1000, "x", true);
                const x1 = u.valToPos(Date.parse(gap.ended_at) / 1000, "x", true);
                ctx.fillRect(x0, u.bbox.top, Math.max(2, x1 - x0), u.bbox.height);
              }
              ctx.restore();
            },
          ],
        },
    });
    select.addEventListener("change", draw);
    draw();
    const day = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" });
    if (gaps.length) {
      // The gaps in words too: a chart's shading is not for everyone.
      const list = document.createElement("ul");
      list.className = "gaps";
      for (const gap of gaps) {
        const item = document.createElement("li");
        item.textContent = `${t("gap")}: ${gap.source || "tesoro"} ${day.format(new Date(gap.started_at))} – ${day.format(new Date(gap.ended_at))} (${gap.reason})`;
        list.append(item);
      }
      box.append(list);
    }
    box.append(
      table(
        t("historyTable"),
        [t("colWhen"), ...currencies],
        points.slice(-7).map((p) => [
          day.format(new Date(p.at)),
          ...currencies.map((c) => {
            const total = p.totals.find((x) => x.currency === c);
            return total ? money(total.net) : "—";
          }),
        ]),
      ),
    );
  }
  if (changes && changes.ok) {
    const body = await changes.json();
    const when = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" });
    const title = sinceYesterday ? t("changesTitle") : t("changesSince", { time: when.format(new Date(changesSince)) });
    if (!body.changes.length) {
      const h3 = Object.assign(document.createElement("h3"), { textContent: title });
      box.append(h3, Object.assign(document.createElement("p"), { textContent: t("changesNone") }));
      return;
    } else {
      box.append(
        table(
          title,
          [t("colAccount"), t("colCurrency"), t("colBefore"), t("colAfter"), t("colDelta")],
          body.changes.slice(0, 20).map((c) => [
            accountName(c.account_id),
            c.currency,
            c.before === null ? "—" : money(c.before),
            c.after === null ? "—" : money(c.after),
            money(c.delta),
          ]),
          "changes",
        ),
      );
    }
  }
}
