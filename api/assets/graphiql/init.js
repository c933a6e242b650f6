// GraphiQL against this server's /graphql. Served from the binary with everything it
// loads, so the page works without a network beyond this server and under a
// Content-Security-Policy that allows scripts from this origin only.
(function () {
  var fetcher = GraphiQL.createFetcher({ url: window.location.origin + '/graphql' });
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(React.createElement(GraphiQL, { fetcher: fetcher, defaultEditorToolsVisibility: true }));
})();
