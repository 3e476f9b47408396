// The bundle's entry: JsSIP as one browser global (window.JsSIP), for app/panel/static/softphone.js.
module.exports = require("jssip");
