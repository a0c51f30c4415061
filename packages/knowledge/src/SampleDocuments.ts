// Short news-like documents for demos and tests: each names people, companies, universities, cities and
// countries that the bundled NER (compromise) recognises, so an ingest run shows every entity kind.
import type { IngestDocumentPayload } from "./KnowledgeModel.js"

export const documents: ReadonlyArray<IngestDocumentPayload> = [
  {
    documentId: "analytical-engine",
    title: "The notes that imagined modern computing",
    text: "Ada Lovelace worked with Charles Babbage in London. Lovelace's notes on the Analytical Engine described an algorithm decades before the first computer was built.\n\nHistorians at the University of Oxford and Harvard University still debate how much of the work was hers. Babbage later presented the design to scientists in Turin, Italy."
  },
  {
    documentId: "microsoft-berlin",
    title: "Microsoft expands in Germany",
    text: "Microsoft opened an office in Berlin, Germany. The company said it would hire engineers from the Technical University of Munich and partner with Siemens on industrial software.\n\nBill Gates, who founded Microsoft, praised the move during a visit to Hamburg."
  },
  {
    documentId: "paris-summit",
    title: "Leaders meet in Paris",
    text: "Angela Merkel met Emmanuel Macron in Paris. The two leaders discussed energy policy and trade with China.\n\nLater, Macron travelled to Brussels, Belgium, where he spoke with officials from the European Union and the World Health Organization."
  },
  {
    documentId: "stanford-ai",
    title: "Stanford opens a new AI institute",
    text: "Stanford University announced a new research institute in California. John Hennessy will lead it together with researchers from IBM and Google.\n\nThe institute will also work with the University of Tokyo in Japan and host visiting students from Toronto, Canada."
  },
  {
    documentId: "curie-legacy",
    title: "Remembering Marie Curie",
    text: "Marie Curie studied at the University of Paris before her discoveries made her famous. Born in Warsaw, Poland, she became the first person to win two Nobel Prizes.\n\nAlbert Einstein admired her work, and the Pasteur Institute continues her research on radioactivity in France."
  },
  {
    documentId: "toyota-sony",
    title: "Japanese giants sign a battery deal",
    text: "Toyota and Sony signed a battery agreement in Tokyo, Japan. Kenichiro Yoshida said the partnership would create jobs in Osaka.\n\nAnalysts at Samsung in Seoul, South Korea, expect Intel to respond with its own announcement."
  },
  {
    documentId: "harvard-boston",
    title: "Harvard hires a new dean",
    text: "Harvard University appointed Jane Smith as dean of engineering. She previously taught at Yale University and lived in Boston.\n\nThe new dean will work with Barack Obama on a public lecture series and with Netflix on a documentary filmed in Chicago."
  },
  {
    documentId: "nairobi-startups",
    title: "Nairobi's start-up scene grows",
    text: "Investors from London and New York flew to Nairobi, Kenya, to meet young founders. Melinda French and Jeff Bezos both spoke at the event.\n\nThe University of Nairobi and Google announced a joint training programme for developers across Africa."
  }
]
