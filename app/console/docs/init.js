// Swagger UI's start-up, in a file: the page's CSP allows no inline script.
window.addEventListener("load", () => {
  window.ui = window.SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // The public validator is another host: never contacted.
    validatorUrl: null,
    layout: "BaseLayout",
    presets: [window.SwaggerUIBundle.presets.apis],
  });
});
