// History: net per currency over the last days (uPlot, vendored) with tesoro's gaps, and the
// accounts that changed since yesterday. Loaded only when this tesoro keeps history.

import uPlot from "./vendor/uplot/uPlot.esm.js";

function table(captionText, headers, rows) {
  const el = document.createElement("table");
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

export async function renderHistory(box, note, history, changes, { t, money, locale }) {
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
    // Plot coordinates only: every figure a person reads is in the table below, exact.
    const series = currencies.map((c) =>
      points.map((p) => {
        const total = p.totals.find((x) => x.currency === c);
        return total ? Number(total.net) : null;
      }),
    );
    const chart = document.createElement("figure");
    chart.className = "chart";
    const caption = document.createElement("figcaption");
    caption.textContent = t("historyCaption");
    chart.append(caption);
    box.append(chart);
    const width = Math.min(box.clientWidth || 600, 900);
    new uPlot(
      {
        width,
        height: 220,
        series: [{}, ...currencies.map((c, i) => ({ label: c, stroke: ["#1f5fa8", "#b5540b", "#2e7d32", "#6a1b9a", "#555"][i % 5], spanGaps: false }))],
        axes: [{}, { size: 70 }],
        hooks: {
          drawClear: [
            (u) => {
              const ctx = u.ctx;
              ctx.save();
              ctx.fillStyle = "rgba(180,0,0,0.08)";
              for (const gap of gaps) {
                const x0 = u.valToPos(Date.parse(gap.from || gap.start) / 1000, "x", true);
                const x1 = u.valToPos(Date.parse(gap.to || gap.end) / 1000, "x", true);
                ctx.fillRect(x0, u.bbox.top, Math.max(2, x1 - x0), u.bbox.height);
              }
              ctx.restore();
            },
          ],
        },
      },
      [xs, ...series],
      chart,
    );
    const day = new Intl.DateTimeFormat(locale, { dateStyle: "medium" });
    box.append(
      table(
        t("historyCaption"),
        [t("rateDate"), ...currencies],
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
    const h3 = document.createElement("h3");
    h3.textContent = t("changesTitle");
    box.append(h3);
    if (!body.changes.length) {
      box.append(Object.assign(document.createElement("p"), { textContent: t("changesNone") }));
    } else {
      box.append(
        table(
          t("changesTitle"),
          [t("colAccount"), t("colCurrency"), t("colBefore"), t("colAfter"), t("colDelta")],
          body.changes.slice(0, 20).map((c) => [
            c.account_id,
            c.currency,
            c.before === null ? "—" : money(c.before),
            c.after === null ? "—" : money(c.after),
            money(c.delta),
          ]),
        ),
      );
    }
  }
}
