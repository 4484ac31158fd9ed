import ArgumentParser
import Foundation
import GraftModels
import GraftSupport
import GraftTasks

/// `graft surgery --model DIR (--keep-layers 0,2,4 | --every K) --out DIR`: a model directory cut
/// down to some of its transformer layers (``ModelSurgery``).
struct SurgeryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "surgery",
        abstract: "Cut a model down to some of its transformer layers (base or head model, BERT or GPT-2).",
        discussion: """
            The kept layers are renumbered 0, 1, … in order; the embeddings, pooler, final norm and task head are \
            copied unchanged, so OUT computes exactly what MODEL computes with the other layers skipped. OUT gets \
            config.json (num_hidden_layers / n_layer updated), model.safetensors, the same tokenizer.json and, for a \
            fine-tuned model, its graft-task.toml, each written atomically. --every K keeps layers 0, K, 2K, …. \
            --drop-heads LAYER:HEAD,… removes BERT attention heads (their query/key/value rows and output-projection \
            columns), recorded as pruned_heads in config.json (transformers 4's layout; graft export refuses such a model, \
            since transformers 5 no longer prunes heads on load).
            """)

    @Option(help: "The model directory (Graft or HuggingFace layout).") var model: String
    @Option(name: .customLong("keep-layers"), help: "Layers to keep, comma-separated, increasing, e.g. 0,2,4.") var keepLayers: String?
    @Option(help: "Keep every K-th layer, counting from layer 0 (0, K, 2K, …).") var every: Int?
    @Option(name: .customLong("drop-heads"), help: "Attention heads to remove, LAYER:HEAD pairs, e.g. 0:1,2:3 (BERT; layers and heads numbered as in MODEL).")
    var dropHeads: String?
    @Option(help: "Output directory.") var out: String
    @Flag(help: "Print the result as one JSON object.") var json = false

    func validate() throws {
        guard keepLayers == nil || every == nil else { throw ValidationError("give at most one of --keep-layers and --every") }
        guard keepLayers != nil || every != nil || dropHeads != nil else { throw ValidationError("give --keep-layers, --every or --drop-heads") }
    }

    func run() throws {
        let loaded = try openModel(model)
        let count = loaded.model.config.layers
        let cut: any PretrainedModel
        let layers: [Int]
        do {
            if let keepLayers {
                layers = try ModelSurgery.parseLayers(keepLayers, of: count)
            } else {
                layers = try ModelSurgery.everyLayer(every ?? 1, of: count)
            }
            // Heads first (numbered as in MODEL), then layers.
            let pruned = try dropHeads.map { try ModelSurgery.droppingHeads(try ModelSurgery.parseHeads($0), of: loaded.model) } ?? loaded.model
            cut = layers.count == count ? pruned : try ModelSurgery.keepingLayers(layers, of: pruned)
            try writeModelDirectory(out, source: model) { try ModelDirectory.save(cut, tokenizer: loaded.tokenizer, to: $0) }
        } catch let e as ModelError { throw CLIError("\(model): \(e)") }
        // The task specs go along: a single-task model's, and each head's of a multi-task one.
        let heads = (loaded.model as? BertMultiTaskModel)?.heads.map(\.head.name) ?? []
        try copyTaskSpecs((taskSpecFileNames + heads.flatMap(multiTaskSpecFileNames(head:))).map { (from: $0, to: $0) }, from: model, to: out)
        let parameters = cut.store.parameters.reduce(0) { $0 + $1.count }
        if json {
            print(JSONValue.object([("model", .string(out)), ("architecture", .string(loaded.architecture.name)),
                                    ("kept_layers", .array(layers.map { .integer($0) })), ("layers", .integer(layers.count)),
                                    ("original_layers", .integer(count)), ("parameters", .integer(parameters)),
                                    ("pruned_heads", .object((cut.config.prunedHeads ?? [:]).keys.sorted().map { (String($0), .array(cut.config.prunedHeads![$0]!.map { .integer($0) })) }))]).serialized())
        } else {
            print("kept layers \(layers.map(String.init).joined(separator: ",")) of \(count): \(loaded.architecture.name) \(describe(cut.config, parameters: parameters)) -> \(out)")
        }
    }
}
