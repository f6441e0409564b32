// MathJax 3 for pymdownx.arithmatex (generic mode): typeset only what arithmatex marked.
// The menu is off so that nothing is loaded lazily; the -full component has every TeX package.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
    enableMenu: false,
  },
  svg: { fontCache: "global" },
};
